"""Tests against real services (RabbitMQ, PostgreSQL, Spark, HDFS, Hive, Pulsar)."""
