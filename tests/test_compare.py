"""`latentspectra compare`: every registered method measured side by side, reproducibly (the README's run, on the
shipped networks), its parts on tiny networks, and the command's argument checks."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from latentspectra.compute import Compute
from latentspectra.config import CompareConfig
from latentspectra.data import load_dataset
from latentspectra.experiments import compare
from latentspectra.experiments.compare import compare_study, run_compare
from latentspectra.experiments.networks import load_study_networks
from latentspectra.methods.directions import available
from latentspectra.models import Classifier
from latentspectra.models.files import load_model, save_model
from readme import comparable_compute, config_from_record, rerun_compute

TINY_PARAMS = {
    "lsd": {"per_set": 2},
    "ganspace": {"n_samples": 50},
    "interfacegan": {"n_samples": 200},
    "learned": {"steps": 2, "batch_size": 4, "n_validation": 8},
    "sfvq": {"epochs_per_stage": 1, "batch_size": 16},
    "reds": {"change": "upper", "hold": "lower"},
}
TIMING_KEYS = {"seconds", "fit_seconds", "eval_seconds", "reconstructor_seconds", "figures"}


@pytest.fixture
def spread_models(tiny_models):
    """The tiny networks with the classifier's head biased so that G(z) of random z gets every label (untrained,
    it calls nearly every image the same label, and LSD needs latents of every label)."""
    generator, _ = load_model(tiny_models, "generator", "generator")
    classifier = Classifier(width=4).eval()
    with torch.no_grad():
        features = classifier.features(
            generator.eval()(torch.randn(2000, 10, generator=torch.Generator().manual_seed(1)))
        )
        classifier.head.bias.sub_(classifier.head(features).mean(0))
    save_model(tiny_models, "classifier", classifier, {"seed": 0})
    return tiny_models


def _without_timing(value):
    if isinstance(value, dict):
        return {key: _without_timing(item) for key, item in value.items() if key not in TIMING_KEYS}
    if isinstance(value, list):
        return [_without_timing(item) for item in value]
    return value


@pytest.mark.slow
def test_compare_measures_every_method_reproducibly(readme_runs, monkeypatch):
    """The README's compare (every method on the shipped networks, K = 3, one seed, 100 measured samples; its
    figures: `test_the_readme_compare_draws_every_methods_figures`; the intervals over two seeds:
    test_ground_truth's compare), and the same study again, written nowhere (writing draws, computes nothing):
    every number the same."""
    out = readme_runs.out("latentspectra compare --out runs/compare")
    record = json.loads((out / "compare.json").read_text())
    assert record["methods"].keys() == set(available())
    assert record["seeds"] == [0]
    for name in available():
        method = record["methods"][name]
        assert "skipped" not in method, (name, method.get("skipped"))
        matrix = torch.tensor(method["rescoring"])
        assert matrix.shape == (3, 10) and bool(matrix.isfinite().all())
        measures = torch.tensor(method["measure_rescoring"])  # grey images: the Morpho-MNIST measures too
        assert measures.shape == (3, len(record["measures"])) and bool(measures.isfinite().all())
        for key in compare.POOLED:
            found = method[key]  # an interval of one seed: its value, no interval
            assert found["values"] == [found["mean"]] and found["ci95"] is None, key
        assert all(0.1 <= value <= 1 for value in method["disentanglement"]["values"])
        assert all(0 <= value <= 1 for value in method["reconstructor_accuracy"]["values"])
        assert all(0 <= value <= 1 for value in method["path_correlation"]["values"])
        assert method["stability"] is None  # one seed: no other seed's directions to compare with
        assert set(method["against_baseline"].values()) <= {"above", "below", "within"}
    assert record["methods"]["random"]["against_baseline"]["disentanglement"] == "within"
    for key, found in record["leaders"].items():
        assert sorted(found["best"] + found["behind"]) == sorted(available()), key
    boundaries = record["methods"]["interfacegan"]["measure_boundaries"]
    assert boundaries["samples"] == 100
    if "skipped" not in boundaries:  # the untrained generator's images may have no ink to measure
        assert len(boundaries["validation_accuracy"]) == len(record["measures"])
        assert all(0 <= value <= 1 for accuracy in boundaries["validation_accuracy"] for value in accuracy["values"])
        assert torch.tensor(boundaries["rescoring"]).shape == (len(record["measures"]), 10)
        assert torch.tensor(boundaries["measure_rescoring"]).shape == (len(record["measures"]),) * 2
        cosines = torch.tensor(boundaries["normals_cosine"])
        assert cosines.shape == (len(record["measures"]),) * 2 and torch.allclose(
            cosines.diagonal(), torch.ones(len(cosines))
        )
    approaches = record["label_edits"]["approaches"]
    assert set(approaches) == {"lsd_rotation", "lsd_projection", "interfacegan", "class_means"}
    assert approaches["lsd_rotation"]["latents"] > 0
    # InterFaceGAN's step is as long as the pair's class-mean difference: measured on the same pairs
    assert [pair["pair"] for pair in approaches["interfacegan"]["pairs"]] == [
        pair["pair"] for pair in approaches["class_means"]["pairs"]
    ]
    for edit in approaches.values():  # the untrained encoder's codes may all get one label: no class means then
        if edit["latents"]:
            first = {
                key: edit[key]["values"][0]
                for key in ("success_rate", "flip_rate", "mean_latent_distance", "mean_feature_distance")
            }
            assert 0 <= first["success_rate"] <= first["flip_rate"] <= 1 and edit["flipped_within"] == 2.0
            assert math.isfinite(first["mean_latent_distance"]) and math.isfinite(first["mean_feature_distance"])
            assert sum(pair["flipped"] for pair in edit["pairs"]) == round(first["flip_rate"] * edit["latents"])
        else:
            assert edit["success_rate"]["mean"] is None and edit["pairs"] == []
    learned = record["methods"]["learned"]  # every seed's convergence curve, the first seed's as `convergence`
    assert next(found["convergence"] for found in learned["fit_record_by_seed"]) == learned["convergence"]
    assert len(learned["fit_record_by_seed"]) == 1 and learned["convergence"]["tolerance"] == 0.02
    report = (out / "report.md").read_text()
    assert "learned: converged" in report or "learned: not converged" in report
    assert "| lsd |" in report and "reconstructor accuracy" in report and "path correlation" in report
    assert "disentanglement: " in report
    page = (out / "report.html").read_text()
    assert "seeds [0]" in page and "<td>lsd</td>" in page

    monkeypatch.chdir(readme_runs.directory)  # where its relative paths point
    config = config_from_record(CompareConfig, record["config"])
    networks = load_study_networks(config, rerun_compute(record))
    result = compare_study(networks, load_dataset(config.dataset), config, progress=False)
    again = json.loads(json.dumps(result.record(record["figures"])))  # as compare.json stores it
    for found in (record, again):
        found["compute"] = comparable_compute(found)
    assert _without_timing(again) == _without_timing(record)


def test_directions_equal_to_an_earlier_seeds_are_measured_once(monkeypatch):
    calls = []

    def counted(name, value):
        return lambda *args, **kwargs: calls.append(name) or value

    monkeypatch.setattr(compare, "rescoring", counted("rescoring", torch.zeros(2, 3)))
    monkeypatch.setattr(compare, "measure_rescoring", counted("measures", None))
    monkeypatch.setattr(compare, "path_correlation", counted("path", 0.5))
    directions, shifts = torch.eye(2, 4), torch.linspace(-1, 1, 3)
    first = compare.evaluate_directions(None, directions, torch.zeros(5, 4), 1.0, shifts)
    assert calls == ["rescoring", "measures", "path"]
    assert compare.evaluate_directions(None, directions.clone(), torch.zeros(5, 4), 1.0, shifts, first) is first
    assert len(calls) == 3  # the same directions bit for bit: nothing measured again
    moved = directions.clone()
    moved[0, 0] = torch.nextafter(moved[0, 0], torch.tensor(2.0))
    assert compare.evaluate_directions(None, moved, torch.zeros(5, 4), 1.0, shifts, first) is not first
    assert len(calls) == 6


def test_each_fit_gets_the_networks_its_rules_ask_for(tiny_models):
    """`fit_inputs` reads the method's class attributes: the learned directions (float32_gradients) train through
    a float32 copy of G in a bfloat16 run; GANSpace (reads_activations) reads the generator as the user made it;
    the rest get the run's networks; latents by fit_latents, InterFaceGAN's own draws scored for it."""
    from latentspectra.experiments.compare import fit_inputs
    from latentspectra.experiments.networks import load_networks
    from latentspectra.methods import get

    networks = load_networks(tiny_models, Compute(precision="bfloat16"))
    train, test = torch.zeros(4, 10), torch.ones(3, 10)
    learned = fit_inputs(get("learned", n_directions=2), networks, train, test)
    assert learned["generator"].compute.precision == "float32" and learned["generator"] is not networks.generator
    assert fit_inputs(get("sefa", n_directions=2), networks, train, test)["generator"] is networks.generator
    assert (
        fit_inputs(get("ganspace", n_directions=2), networks, train, test)["generator"]
        is networks.description.generator
    )
    assert fit_inputs(get("sfvq", n_directions=2), networks, train, test)["latents"] is train
    assert fit_inputs(get("reds", n_directions=2), networks, train, test)["latents"] is test
    drawn = fit_inputs(get("interfacegan", n_samples=40, latent_dim=10), networks, train, test)
    assert drawn["latents"] is None and drawn["scores"].shape == (40, 10)


def test_the_readme_compare_draws_every_methods_figures(readme_runs):
    """The README's compare (every method, the shipped networks): a direction and a re-scoring figure per method, the
    summary, each named in compare.json, and every one embedded in report.html."""
    out = readme_runs.out("latentspectra compare --out runs/compare")
    record = json.loads((out / "compare.json").read_text())
    assert set(record["methods"]) == set(available())
    drawn = [path for name in available() for path in (f"{name}.png", f"{name}-rescoring.png")] + ["summary.png"]
    assert all((out / "figures" / path).stat().st_size > 0 for path in drawn)
    assert sorted(Path(path).name for path in record["figures"].values()) == sorted(drawn)
    assert (out / "report.html").read_text().count("data:image/png;base64,") == len(drawn)


@pytest.mark.slow
def test_compare_skips_a_method_that_cannot_fit(tmp_path, tiny_models, tiny_npz):
    config = CompareConfig(
        dataset=f"npz:{tiny_npz}",
        directions=2,
        latents=8,
        steps=2,
        methods=("lsd", "random"),
        seeds=1,
        reconstructor_steps=3,
        reconstructor_validation=8,
        method_params={"lsd": {"per_set": 2, "max_draws": 20}},
        device="cpu",
    )
    record = run_compare(tmp_path / "out", replace(config, networks=tiny_models), progress=False)
    assert "too few latents" in record["methods"]["lsd"]["skipped"]
    assert "lsd_rotation" not in record["label_edits"]["approaches"]
    assert (tmp_path / "out" / "figures" / "random.png").exists()
    assert not (tmp_path / "out" / "figures" / "lsd.png").exists()


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("--methods", "lsd,nope"), "nope"),
        (("--directions", "11"), "--directions"),
        (("--param", "sefa.nope=1"), "nope"),
        (("--param", "nope.layer=main.0"), "nope"),
        (("--param", "sefa"), "METHOD.NAME=VALUE"),
    ],
)
def test_compare_refuses_bad_arguments_before_writing(capsys, tmp_path, tiny_models, tiny_npz, arguments, message):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        capsys,
        "compare",
        "--out",
        str(out),
        "--networks",
        str(tiny_models),
        "--dataset",
        f"npz:{tiny_npz}",
        "--device",
        "cpu",
        "--quiet",
        *arguments,
    )
    assert code == 2 and stdout == "" and message in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_the_lsd_projection_edit_moves_label_a_amplitude_onto_label_b():
    from latentspectra.latent import QuasiEigenBasis
    from latentspectra.methods.ours import LSDDirections

    etas = torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    basis = QuasiEigenBasis.from_etas(etas, [0, 1, 2] * 2, [1, 1, 1, 2, 2, 2])
    z = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    lsd = LSDDirections.from_basis(basis)
    before, after = basis.decompose(z), basis.decompose(lsd.projection_edit(z, 0, 2))
    assert torch.equal(lsd.label_edits({}, 3)["lsd_projection"](z, 0, 2, 1.0), lsd.projection_edit(z, 0, 2))
    a, b = basis.index_of(0), basis.index_of(2)
    assert torch.allclose(after[:, a], torch.zeros(4, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(after[:, b], before[:, b] + before[:, a])
    others = [k for k in range(6) if k not in (a, b)]
    assert torch.allclose(after[:, others], before[:, others])


def test_the_report_says_per_seed_whether_the_learned_directions_converged():
    from latentspectra.report.compare_figures import convergence_lines

    def seed(steps, accuracy, converged, tolerance=0.02):
        return {
            "convergence": {
                "steps": steps,
                "reconstructor_accuracy": accuracy,
                "tolerance": tolerance,
                "converged": converged,
            }
        }

    record = {
        "methods": {
            "sefa": {},
            "learned": {
                "fit_record_by_seed": [
                    seed([4, 8, 16], [0.49, 0.5, 0.51], True),
                    seed([8, 16], [0.5, 0.6], False),
                    seed([16], [0.4], None, None),
                ]
            },
        }
    }
    (line,) = convergence_lines(record)
    assert line.startswith(
        "learned: converged for 1 of 3 seeds (two doublings of the steps in a row each adding less than 0.02"
    )
    assert "16 steps, accuracy 0.510, last doublings +0.010, +0.010" in line and "last doublings n/a" in line
    assert "accuracy 0.600, last doublings +0.100;" in line
    record["methods"]["learned"]["fit_record_by_seed"] = [seed([8, 16], [0.5, 0.6], False)]
    assert convergence_lines(record)[0].startswith("learned: not converged")


def test_first_flips_takes_the_smallest_strength_that_reaches_the_target():
    from latentspectra.experiments.compare import first_flips

    def step(reached, scale):
        return {
            "reached": torch.tensor(reached),
            "latent_distance": scale * torch.ones(3, dtype=torch.float64),
            "feature_distance": 10 * scale * torch.ones(3, dtype=torch.float64),
        }

    found = first_flips(
        [step([False, True, False], 1.0), step([True, True, False], 2.0), step([False, True, False], 3.0)]
    )
    assert found["reached"].tolist() == [True, True, False]
    assert found["latent_distance"].tolist() == [2.0, 1.0, math.inf]
    assert found["feature_distance"].tolist() == [20.0, 10.0, math.inf]


@pytest.mark.slow
def test_compare_param_options_reach_the_methods(capsys, tmp_path, spread_models, tiny_npz):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        capsys,
        "compare",
        "--out",
        str(out),
        "--networks",
        str(spread_models),
        "--dataset",
        f"npz:{tiny_npz}",
        "--device",
        "cpu",
        "--quiet",
        "--json",
        "--seeds",
        "1",
        "--methods",
        "sefa,ganspace,learned",
        "--directions",
        "2",
        "--latents",
        "4",
        "--edit-latents",
        "6",
        "--reconstructor-steps",
        "2",
        "--reconstructor-validation",
        "64",
        "--param",
        "sefa.layer=project.0",
        "--param",
        "ganspace.layer=project.2",
        "--param",
        "ganspace.n_samples=64",
        "--param",
        "learned.steps=2",
        "--param",
        "learned.n_validation=64",
        "--no-figures",
    )
    assert code == 0, stderr
    methods = json.loads(stdout)["methods"]
    assert not [name for name, method in methods.items() if "skipped" in method], methods
    assert methods["sefa"]["params"]["layer"] == "project.0"
    assert methods["ganspace"]["params"]["layer"] == "project.2" and methods["ganspace"]["params"]["n_samples"] == 64
    learned = methods["learned"]["params"]  # the default budget's, with the --param over it
    assert learned["steps"] == 2 and learned["batch_size"] == 64 and learned["tolerance"] == 0.02
    assert learned["n_validation"] == 64
    assert json.loads(stdout)["config"]["reconstructor_steps"] == 2


def test_the_paper_budget_trains_the_learned_directions_as_their_authors():
    from latentspectra.experiments.compare import method_params

    paper = method_params("learned", CompareConfig(budget="paper"), 100)
    assert {key: paper[key] for key in ("steps", "learning_rate", "deformator", "n_directions")} == {
        "steps": 100_000,
        "learning_rate": 1e-4,
        "deformator": "expm",
        "n_directions": 100,
    }
    default = method_params("learned", CompareConfig(), 100)
    assert default["tolerance"] == 0.02 and default["n_directions"] == 10  # trained until converged
    assert "tolerance" not in method_params("learned", CompareConfig(budget="quick"), 100)
    over = CompareConfig(budget="paper", method_params={"learned": {"steps": 7}})
    assert method_params("learned", over, 100)["steps"] == 7  # a --param goes over the budget
    assert "deformator" not in method_params("sefa", CompareConfig(budget="paper"), 100)


@pytest.mark.parametrize("labels", [2, 3])
def test_below_four_labels_the_rescoring_disentanglement_is_one_half_and_ranks_nobody(labels):
    """Label probabilities' changes sum to zero, so with two or three labels every row scores 1/2; compare says so
    instead of ranking methods by rounding noise."""
    before = torch.softmax(torch.randn(200, labels, generator=torch.Generator().manual_seed(labels)), dim=1)
    after = torch.softmax(torch.randn(200, labels, generator=torch.Generator().manual_seed(labels + 10)), dim=1)
    assert compare.disentanglement(after - before) == pytest.approx(0.5, abs=1e-6)
    four = torch.softmax(torch.randn(200, 4), dim=1) - torch.softmax(torch.randn(200, 4), dim=1)
    assert compare.disentanglement(four) != pytest.approx(0.5, abs=1e-3)
    found = {"mean": 0.5, "ci95": [0.5, 0.5], "values": [0.5]}
    methods = {name: dict.fromkeys(compare.HEADLINES, found) for name in ("a", "b")}
    ranked = compare.headline_leaders(methods, labels)
    assert ranked["disentanglement"]["best"] == [] and "not ranked" in ranked["disentanglement"]["unranked"]
    assert sorted(ranked["target_change"]["best"] + ranked["target_change"]["behind"]) == ["a", "b"]
    assert compare.headline_leaders(methods, 4)["disentanglement"]["best"] == ["a", "b"]
    from latentspectra.report.compare_figures import leader_lines

    lines = leader_lines({"methods": methods, "leaders": ranked})
    assert lines[0] == f"disentanglement: {compare.UNRANKED_DISENTANGLEMENT}." and "tied: a, b" in lines[1]
