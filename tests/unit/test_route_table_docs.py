"""conf/route_table.yaml and conf/rabbitmq.md agree with the code about ``mng_port`` (issue 12
§5.8): the RabbitMQ transport declares its queues over AMQP and ignores a management port."""

from __future__ import annotations

from pathlib import Path

import yaml

from federation._rabbitmq_conf import BrokerAddress

REPO = Path(__file__).resolve().parents[2]


def test_mng_port_is_accepted_and_ignored_as_the_docs_say():
    table = yaml.safe_load((REPO / "conf" / "route_table.yaml").read_text())
    for pid, entry in table["parties"].items():
        assert entry["rabbitmq"]["mng_port"] == 15672, pid
        address = BrokerAddress.model_validate(entry["rabbitmq"])
        assert "mng_port" not in address.model_dump() and address.port == 5672
    text = (REPO / "conf" / "route_table.yaml").read_text()
    assert "used to create the job's queues" not in text and "accepted and ignored" in text
    assert "mng_port" in (REPO / "conf" / "rabbitmq.md").read_text()
    assert "No management plugin is needed" in (REPO / "conf" / "rabbitmq.md").read_text()
