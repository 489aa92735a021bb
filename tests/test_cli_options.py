"""The command line is made from the configs: every option a config field declares, its help as users see it,
and a new field that becomes an option with no edit to cli.py."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import click
import pytest
from click.testing import CliRunner

from cli_help import EXPECTED, all_help
from latentspectra import cli as cli_module
from latentspectra.config import (
    BasisConfig,
    CompareConfig,
    EvaluateConfig,
    ExploreConfig,
    FragmentationConfig,
    InvertConfig,
    RedsConfig,
    ReproduceConfig,
    SFVQStudyConfig,
    StudyConfig,
    TrainConfig,
    config_record,
    option,
    option_fields,
)

COMMANDS = {
    "basis": BasisConfig,
    "compare": CompareConfig,
    "evaluate": EvaluateConfig,
    "explore": ExploreConfig,
    "fragmentation": FragmentationConfig,
    "invert": InvertConfig,
    "reds": RedsConfig,
    "reproduce": ReproduceConfig,
    "sfvq": SFVQStudyConfig,
    "train": TrainConfig,
}


def test_every_help_text_is_as_users_see_it():
    """Options, help texts and defaults of every command, as in tests/data/cli_help.txt (rewrite it with
    ``python tests/cli_help.py`` after an intended change)."""
    assert all_help() == EXPECTED.read_text()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_declared_field_is_an_option_of_its_command(name):
    config_type = COMMANDS[name]
    command = cli_module.cli.commands[name]
    options = {parameter.name: parameter for parameter in command.params if isinstance(parameter, click.Option)}
    for each in option_fields(config_type):
        assert each.name in options, each.name
        assert options[each.name].default == each.default
    if issubclass(config_type, StudyConfig):  # one meaning of batch_size: the network batch
        assert options["batch_size"].opts == ["--batch-size"]


def test_every_study_config_shares_one_base():
    run = ["dataset", "seed", "device", "precision"]
    networks = ["networks", "generator_file", "classifier_file", "encoder_file"]
    for name, config_type in COMMANDS.items():
        leading = run if name == "train" else [*networks, *run, "batch_size"]
        assert [each.name for each in fields(config_type)][: len(leading)] == leading, name
    assert all(issubclass(config_type, StudyConfig) for name, config_type in COMMANDS.items() if name != "train")


def test_the_networks_are_a_field_and_the_record_names_them_without_copying_them(tmp_path):
    """A study's networks are a config field (so --networks, --generator... are options built from it); its
    record names them: a path as text, a `LatentNetworks` by its source."""
    from latentspectra.experiments.networks import load_study_networks
    from latentspectra.models.spec import LatentNetworks

    described = LatentNetworks(latent_dim=3, image_shape=(1, 4, 4), source="a factory of the test")
    config = BasisConfig(networks=described, generator_file=tmp_path / "g.pt2")
    record = config_record(config)
    assert record["networks"] == "a factory of the test" and record["generator_file"] == str(tmp_path / "g.pt2")
    assert record["classifier_file"] is None and record["dataset"] == "mnist"
    assert config_record(BasisConfig())["networks"] is None
    assert config_record(TrainConfig()) == asdict(TrainConfig())
    loaded = load_study_networks(BasisConfig(device="cpu", precision="float32"))
    assert loaded.latent_dim == 100 and loaded.generator is not None  # None: the dataset's shipped networks


def test_a_new_config_field_is_a_new_option():
    @dataclass(frozen=True)
    class WithNewField(StudyConfig):
        dataset_use = "for the test"
        strength: float = option(1.5, "How strong.", low=0, low_open=True)

    seen = []

    @click.command()
    @cli_module.config_options(WithNewField)
    def command(config: WithNewField) -> None:
        seen.append(config)

    runner = CliRunner()
    assert runner.invoke(command, ["--strength", "2.5", "--seed", "7"]).exit_code == 0
    assert seen == [WithNewField(strength=2.5, seed=7)]
    shown = runner.invoke(command, ["--help"], terminal_width=80).output
    assert "--strength FLOAT RANGE" in shown and "How strong." in shown and "Dataset for the test" in shown
    refused = runner.invoke(command, ["--strength", "0"])
    assert refused.exit_code == 2 and "--strength" in refused.output
