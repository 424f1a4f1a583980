"""The session table the SAM template deploys has the keys the devstack and the tests create
(``exportsync_wire.table``): the template is YAML, so this test holds it to the Python statement."""

from __future__ import annotations

from pathlib import Path

from cfnlint.decode import cfn_yaml

from exportsync_wire import table

TEMPLATE = Path(__file__).resolve().parents[2] / "lambda" / "template.yaml"


def test_the_templates_session_table_has_the_wires_keys() -> None:
    # cfn-lint's reader: it knows CloudFormation's short tags (!Ref, !Sub, ...).
    template = cfn_yaml.load(str(TEMPLATE))
    properties = template["Resources"]["SessionTable"]["Properties"]
    assert properties["KeySchema"] == table.KEY_SCHEMA
    assert properties["AttributeDefinitions"] == table.ATTRIBUTE_DEFINITIONS
