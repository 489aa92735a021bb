"""SFVQ (methods/sfvq.py): exact curve quantization against brute force, recovery of a known curve,
order-keeping codebook growth (the authors' split, against a port of their ``codebook_extension``, and our
midpoints), the training candidates (ours and the authors'), save/load, and clear errors."""

from __future__ import annotations

import itertools

import pytest
import torch

from conftest import rewrite_pair
from latentspectra import SFVQ, SFVQError
from latentspectra.latent import LatentError
from latentspectra.methods import load_sfvq, save_sfvq
from latentspectra.methods.sfvq import (
    SFVQ_CANDIDATES,
    SFVQ_GROWTH,
    curve_points,
    grown_codebook,
    growth_schedule,
    insert_codewords,
    nearest_codewords,
    norm_quantile_means,
    project_onto_curve,
    split_codewords,
    training_candidates,
)


def brute_force_squared_distances(latents: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """(N, K - 1): squared distance of each input to each segment, one segment at a time in float64."""
    x, c = latents.double(), codebook.double()
    columns = []
    for start, end in itertools.pairwise(c):
        step = end - start
        length = step @ step
        t = ((x - start) @ step / length).clamp(0, 1) if length > 0 else torch.zeros(len(x), dtype=x.dtype)
        columns.append((x - start - t[:, None] * step).pow(2).sum(1))
    return torch.stack(columns, 1)


def random_curve_and_points(seed: int = 0, codewords: int = 9, dim: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    rng = torch.Generator().manual_seed(seed)
    codebook = torch.randn(codewords, dim, generator=rng, dtype=torch.float64)
    codebook[4] = codebook[3]  # a zero-length segment
    points = torch.cat(
        [
            3 * torch.randn(400, dim, generator=rng, dtype=torch.float64),  # many beyond the ends
            codebook,  # exactly on corners
            curve_points(codebook, torch.arange(codewords - 1), torch.full((codewords - 1,), 0.3)),
        ]
    )
    return codebook, points


def test_quantization_is_the_nearest_point_over_all_segments():
    codebook, points = random_curve_and_points()
    result = project_onto_curve(points, codebook)
    reference = brute_force_squared_distances(points, codebook).min(1).values
    torch.testing.assert_close(result.squared_distances, reference, rtol=0, atol=1e-10)
    # the returned point is on the returned segment at the returned position, and at that distance
    assert ((result.positions >= 0) & (result.positions <= 1)).all()
    assert ((result.segments >= 0) & (result.segments <= len(codebook) - 2)).all()
    torch.testing.assert_close(result.points, curve_points(codebook, result.segments, result.positions))
    torch.testing.assert_close(result.squared_distances, (points - result.points).pow(2).sum(1))
    # points on the curve quantize to themselves
    on_curve = result.squared_distances[400:]
    assert on_curve.max() < 1e-20
    # independent check: no sampled point of any segment is nearer
    t = torch.linspace(0, 1, 201, dtype=torch.float64)
    steps = (codebook[1:] - codebook[:-1])[:, None]
    samples = (codebook[:-1, None] + t[:, None] * steps).reshape(-1, codebook.shape[1])
    sampled = torch.cdist(points, samples).pow(2).min(1).values
    assert (result.squared_distances <= sampled + 1e-12).all()


def test_quantization_in_chunks_and_through_a_fitted_sfvq():
    codebook, points = random_curve_and_points(seed=1)
    whole = project_onto_curve(points, codebook)
    chunked = project_onto_curve(points, codebook, chunk_rows=7)
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b)
    model = SFVQ(6, epochs_per_stage=1, batch_size=32).fit(points[:300].float())
    result = model.quantize(points[300:].float())
    reference = brute_force_squared_distances(points[300:].float(), model.codebook_).min(1).values
    torch.testing.assert_close(result.squared_distances.double(), reference, rtol=1e-5, atol=1e-5)
    assert result.points.dtype == torch.float32 and result.points.shape == (len(points) - 300, 4)


def spiral(s: torch.Tensor) -> torch.Tensor:
    """A curve in 5-D whose norm grows along it (so the norm-quartile start is in order): s in [1, 4]."""
    return torch.stack([s * torch.cos(2 * s), s * torch.sin(2 * s), s, 0 * s, 0 * s], 1)


# The split growth starts each new pair of codewords 1% of a segment apart, and training can leave one pair in
# swapped order (a local fold): on this spiral in 3 of seeds 0-3, never with midpoints (docs/sfvq.md).
@pytest.mark.parametrize("growth, folds", [("midpoint", 0), ("split", 1)])
def test_fitted_curve_recovers_a_known_curve(growth, folds):
    rng = torch.Generator().manual_seed(1)
    s = 1 + 3 * torch.rand(2000, generator=rng)
    noise = 0.02
    data = spiral(s) + noise * torch.randn(2000, 5, generator=rng)
    # lr 1e-2: the stages are only 5 x 32 steps long on these 2000 points
    model = SFVQ(32, learning_rate=1e-2, seed=0, growth=growth).fit(data)
    dense_s = torch.linspace(1, 4, 3001)
    nearest = torch.cdist(model.codebook_, spiral(dense_s)).min(1)
    assert nearest.values.max() < 0.05  # every codeword lies on the true curve
    steps = dense_s[nearest.indices].diff().sign()
    assert int((steps != steps.sum().sign()).sum()) <= folds  # in the curve's order, but for the folds
    covered = dense_s[nearest.indices]
    assert covered.min() < 1.2 and covered.max() > 3.8  # from one end to the other
    # the fitted curve explains the data down to the noise (5 * noise^2 per vector)
    assert model.quantize(data).squared_distances.mean() < 2.5 * 5 * noise**2


def test_codebook_growth_keeps_order_and_the_curve():
    rng = torch.Generator().manual_seed(2)
    codebook = torch.randn(5, 3, generator=rng, dtype=torch.float64)
    for count in (5, 6, 10, 17):
        grown = insert_codewords(codebook, count)
        assert grown.shape == (count, 3)
        # the old codewords stay, in order; the new ones lie on the old segments between them
        kept = [int(torch.cdist(old[None], grown)[0].argmin()) for old in codebook]
        assert kept == sorted(kept) and kept[0] == 0 and kept[-1] == count - 1
        assert torch.cdist(codebook, grown).min(1).values.max() < 1e-12
        on_old = project_onto_curve(grown, codebook)
        assert on_old.squared_distances.max() < 1e-20
        position = on_old.segments.double() + on_old.positions
        assert (position.diff() >= -1e-12).all()
    # one new codeword per segment: its midpoint
    midpoints = (codebook[:-1] + codebook[1:]) / 2
    assert torch.cdist(midpoints, insert_codewords(codebook, 9)).min(1).values.max() < 1e-12
    assert growth_schedule(4, 64) == [4, 8, 16, 32, 64]
    assert growth_schedule(4, 48) == [4, 8, 16, 32, 48]
    assert growth_schedule(4, 3) == [3]
    with pytest.raises(SFVQError, match="growth_schedule"):
        growth_schedule(0, 64)


def authors_codebook_extension(codebook: torch.Tensor, eps: float = 0.01) -> torch.Tensor:
    """A port of the authors' doubling (their ``utils.codebook_extension`` and ``SpaceFillingVQ.decode``, eps their
    ``codebook_extension_eps``): fractional curve indices k, k + eps for the first half of the K codewords and
    k - eps, k for the second, decoded as (1 - r) c_i + r c_i+1 with i = floor(index) clamped to 0..K-2."""
    size = len(codebook)
    indices = torch.tensor(
        [index for k in range(size) for index in ((k, k + eps) if k < size // 2 else (k - eps, k))], dtype=torch.float32
    )
    integer = indices.floor().clamp(0, size - 2).long()
    remainder = (indices - integer)[:, None]
    return (1 - remainder) * codebook[integer] + remainder * codebook[integer + 1]


@pytest.mark.parametrize("size", [2, 4, 8, 16])
def test_split_growth_is_the_authors_codebook_extension(size):
    codebook = torch.randn(size, 5, generator=torch.Generator().manual_seed(size))
    torch.testing.assert_close(
        split_codewords(codebook, 2 * size), authors_codebook_extension(codebook), rtol=0, atol=1e-5
    )
    assert torch.equal(grown_codebook(codebook, 2 * size, "split"), split_codewords(codebook, 2 * size))
    assert torch.equal(grown_codebook(codebook, 2 * size, "midpoint"), insert_codewords(codebook, 2 * size))


@pytest.mark.parametrize("size, count", [(4, 8), (5, 10), (5, 6), (8, 11), (3, 3)])
def test_split_growth_keeps_order_and_the_curve(size, count):
    """Every old codeword stays, in order, and every copy lies on the old curve 1% of a segment from its codeword
    (the growth of a last stage short of doubling, e.g. 32 -> 48, splits count - K codewords spread evenly)."""
    codebook = torch.randn(size, 3, generator=torch.Generator().manual_seed(count), dtype=torch.float64)
    grown = split_codewords(codebook, count)
    assert grown.shape == (count, 3)
    kept = [int(torch.cdist(old[None], grown)[0].argmin()) for old in codebook]
    assert kept == sorted(kept) and kept[0] == 0 and kept[-1] == count - 1
    on_old = project_onto_curve(grown, codebook)
    assert on_old.squared_distances.max() < 1e-20
    assert ((on_old.segments.double() + on_old.positions).diff() >= -1e-12).all()
    copies = [row for index, row in enumerate(grown) if index not in kept]
    steps = torch.linalg.vector_norm(codebook.diff(dim=0), dim=1)
    gaps = torch.cdist(torch.stack(copies), codebook).min(1).values if copies else torch.zeros(0)
    assert all(torch.isclose(gap, 0.01 * steps).any() for gap in gaps)
    with pytest.raises(SFVQError, match=f"split_codewords: .*K <= count <= 2K, got K = {size}"):
        split_codewords(codebook, 2 * size + 1)


def test_fit_grows_through_the_schedule_and_starts_from_norm_quartiles():
    rng = torch.Generator().manual_seed(3)
    data = torch.randn(400, 6, generator=rng)
    start = norm_quantile_means(data, 4)
    norms = data.norm(dim=1)
    torch.testing.assert_close(start[0], data[norms <= norms.kthvalue(100).values].mean(0))
    torch.testing.assert_close(start[3], data[norms > norms.kthvalue(300).values].mean(0))
    model = SFVQ(12, epochs_per_stage=1).fit(data)
    assert [stage["codewords"] for stage in model.history_] == [4, 8, 12]
    assert model.codebook_.shape == (12, 6) and model.n_features_in_ == 6
    assert all(stage["steps"] == 7 for stage in model.history_)  # 400 / 64 rounded up, 1 epoch


def test_training_candidates_are_ours_or_the_authors_dithered_points_only():
    codebook = torch.randn(6, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    ours = training_candidates(codebook, torch.Generator().manual_seed(1), "codewords+dithered")
    theirs = training_candidates(codebook, torch.Generator().manual_seed(1), "dithered")
    assert ours.shape == (11, 3) and theirs.shape == (5, 3)  # 2K - 1 and K - 1
    assert torch.equal(ours[:6], codebook) and torch.equal(ours[6:], theirs)
    # the authors' candidates: one point inside each segment k, in order, none of them a codeword
    on_curve = project_onto_curve(theirs, codebook)
    assert on_curve.squared_distances.max() < 1e-20
    assert on_curve.segments.tolist() == [0, 1, 2, 3, 4]
    assert ((on_curve.positions > 0) & (on_curve.positions < 1)).all()


def test_same_seed_same_codebook_for_each_candidate_set_and_save_load(tmp_path):
    rng = torch.Generator().manual_seed(4)
    data = torch.randn(300, 5, generator=rng)
    codebooks = []
    for candidates in SFVQ_CANDIDATES:
        first = SFVQ(8, epochs_per_stage=2, seed=7, candidates=candidates).fit(data)
        second = SFVQ(8, epochs_per_stage=2, seed=7, candidates=candidates).fit(data)
        assert torch.equal(first.codebook_, second.codebook_), candidates
        codebooks.append(first.codebook_)
        path = save_sfvq(first, tmp_path / f"{candidates}.safetensors")
        loaded = load_sfvq(path)
        assert loaded.candidates == candidates and loaded.get_params() == first.get_params()
        assert torch.equal(loaded.codebook_, first.codebook_) and loaded.history_ == first.history_
        for a, b in zip(loaded.quantize(data), first.quantize(data)):
            assert torch.equal(a, b)
    assert not torch.equal(*codebooks)  # same data and seed, different candidates: different fits
    other = SFVQ(8, epochs_per_stage=2, seed=8).fit(data)
    assert not torch.equal(codebooks[0], other.codebook_)


def test_each_growth_rule_fits_reproducibly_and_is_saved(tmp_path):
    data = torch.randn(300, 5, generator=torch.Generator().manual_seed(4))
    assert SFVQ(8).growth == "split"  # the authors' rule, the default (docs/sfvq.md)
    codebooks = []
    for growth in SFVQ_GROWTH:
        first = SFVQ(8, epochs_per_stage=2, seed=7, growth=growth).fit(data)
        assert torch.equal(first.codebook_, SFVQ(8, epochs_per_stage=2, seed=7, growth=growth).fit(data).codebook_)
        loaded = load_sfvq(save_sfvq(first, tmp_path / f"{growth}.safetensors"))
        assert loaded.growth == growth and loaded.get_params() == first.get_params()
        codebooks.append(first.codebook_)
    assert not torch.equal(*codebooks)


def test_a_curve_saved_before_the_candidates_parameter_loads_with_the_default(tmp_path):
    model = SFVQ(4, epochs_per_stage=1).fit(torch.randn(50, 3))
    path = save_sfvq(model, tmp_path / "curve.safetensors")
    rewrite_pair(
        path,
        lambda record: {
            **record,
            "params": {key: value for key, value in record["params"].items() if key != "candidates"},
        },
    )
    assert "candidates" not in path.with_suffix(".json").read_text()
    loaded = load_sfvq(path)
    assert loaded.candidates == "codewords+dithered" and torch.equal(loaded.codebook_, model.codebook_)


def test_a_curve_saved_before_the_growth_parameter_loads_as_grown_by_midpoints(tmp_path):
    model = SFVQ(4, epochs_per_stage=1, growth="midpoint").fit(torch.randn(50, 3))
    path = save_sfvq(model, tmp_path / "curve.safetensors")
    rewrite_pair(
        path,
        lambda record: {**record, "params": {key: value for key, value in record["params"].items() if key != "growth"}},
    )
    assert load_sfvq(path).growth == "midpoint"


def test_nearest_codewords_is_plain_vq():
    codebook, points = random_curve_and_points(seed=5)
    indices, squared = nearest_codewords(points, codebook, chunk_rows=11)
    reference = torch.cdist(points, codebook).pow(2)
    torch.testing.assert_close(squared, reference.min(1).values)
    assert torch.equal(squared, (points - codebook[indices]).pow(2).sum(1))


@pytest.mark.parametrize(
    "make, fit_with, error_type, expected",
    [
        (lambda: SFVQ(1), torch.randn(10, 3), SFVQError, "num_codewords"),
        (lambda: SFVQ(0), torch.randn(10, 3), SFVQError, "num_codewords"),
        (lambda: SFVQ(4, batch_size=0), torch.randn(10, 3), SFVQError, "batch_size"),
        (lambda: SFVQ(4, learning_rate=-1.0), torch.randn(10, 3), SFVQError, "learning_rate"),
        (lambda: SFVQ(4, decay_at=(0.8, 0.6)), torch.randn(10, 3), SFVQError, "decay_at"),
        (
            lambda: SFVQ(4, candidates="codewords"),
            torch.randn(10, 3),
            SFVQError,
            r"candidates: expected one of codewords\+dithered, dithered, got 'codewords'",
        ),
        (
            lambda: SFVQ(4, growth="double"),
            torch.randn(10, 3),
            SFVQError,
            "growth: expected one of split, midpoint, got 'double'",
        ),
        (
            lambda: SFVQ(4),
            torch.randn(10),
            LatentError,
            r"SFVQ.fit: latents must be .* shape \(N, M\), got shape \(10,\)",
        ),
        (lambda: SFVQ(4), torch.randn(2, 5, 3), LatentError, r"shape \(N, M\), got shape \(2, 5, 3\)"),
        (lambda: SFVQ(4), torch.randn(0, 3), LatentError, r"shape \(N, M\), got shape \(0, 3\)"),
        (lambda: SFVQ(4), torch.arange(30).reshape(10, 3), LatentError, "floating-point .*, got torch.int64"),
        (lambda: SFVQ(4), torch.full((10, 3), float("nan")), LatentError, "got NaN or infinite values"),
        (lambda: SFVQ(4), [[0.0, 1.0]] * 10, LatentError, "got list"),
        (lambda: SFVQ(8), torch.randn(5, 3), SFVQError, "at least num_codewords"),
    ],
)
def test_bad_parameters_and_latents_are_clear_errors(make, fit_with, error_type, expected):
    with pytest.raises(error_type, match=expected) as error:
        make().fit(fit_with)
    assert "\n" not in str(error.value)


def test_quantize_errors(tmp_path):
    with pytest.raises(SFVQError, match="not fitted"):
        SFVQ(4).quantize(torch.randn(3, 2))
    model = SFVQ(4, epochs_per_stage=1).fit(torch.randn(50, 3))
    with pytest.raises(LatentError, match=r"project_onto_curve: latents must be .* shape \(N, 3\), got shape \(5, 4\)"):
        model.quantize(torch.randn(5, 4))
    with pytest.raises(SFVQError, match="chunk_rows"):
        model.quantize(torch.randn(5, 3), chunk_rows=0)
    with pytest.raises(SFVQError, match="at least 2 codewords"):
        project_onto_curve(torch.randn(5, 3), torch.randn(1, 3))
    with pytest.raises(SFVQError, match=".json"):
        save_sfvq(model, tmp_path / "curve.json")


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(SFVQError, match="not found"):
        load_sfvq(tmp_path / "missing.safetensors")
    path = save_sfvq(SFVQ(4, epochs_per_stage=1).fit(torch.randn(50, 3)), tmp_path / "curve.safetensors")
    meta = path.with_suffix(".json")
    text = meta.read_text()
    meta.write_text(text.replace('"num_codewords": 4', '"num_codewords": 5'))
    with pytest.raises(SFVQError, match="were not written together"):
        load_sfvq(path)
    rewrite_pair(path, lambda record: {**record, "params": {**record["params"], "num_codewords": 5}})
    with pytest.raises(SFVQError, match="curve.safetensors: expected a 'codebook' tensor of shape"):
        load_sfvq(path)
    path = save_sfvq(SFVQ(4, epochs_per_stage=1).fit(torch.randn(50, 3)), tmp_path / "curve.safetensors")
    meta.write_text("{not json")
    with pytest.raises(SFVQError, match="not valid JSON"):
        load_sfvq(path)
    meta.write_text(text)
    path.write_bytes(b"garbage")
    with pytest.raises(SFVQError, match="curve.safetensors"):
        load_sfvq(path)
