"""The job runtime: submit/stop/rerun (job), the supervisor process per job, one party
process per (role, party_id) running its share of the DAG (party), task tracking and
output keeping (tracking), logs, and building the party's federation (transport)."""
