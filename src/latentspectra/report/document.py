"""The reproduction report: ``report.md`` and one self-contained ``report.html`` from a run's metrics.

The report is first built as a list of plain blocks (headings, paragraphs, tables, figures) and then
rendered twice, as Markdown and as HTML, so both files always say the same thing. A key missing from
the metrics renders as an em dash; nothing here computes results.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..io import atomic_write

MISSING = "—"
MARKDOWN_SPECIAL = "\\`*[]<>"
TITLE = "Latent Spectral Decomposition: reproduction report"
PAPER = (
    'Toledo-Marín & Glazier, "Using deep LSD to build operators in GANs latent space with meaning in '
    'real space", PLOS ONE 18(6): e0287736, 2023'
)
CSS = (
    "body{font-family:sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;line-height:1.4}"
    "table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #bbb;padding:.2rem .6rem;"
    "text-align:left}th{background:#eee}figure{margin:1.5rem 0}img{max-width:100%}"
)

FIGURE_CAPTIONS = {
    "fig2": "Fig. 2: test images, their encode -> decode reconstructions and random samples G(z)",
    "fig3": "Fig. 3: latent vectors by label, decoded label means G(eta) and latent components against N(0, 1)",
    "fig4": "Fig. 4: decoded etas and quasi-eigenvectors xi (rows = sets, columns = labels) and their Gram matrices",
    "fig5": "Fig. 5: LSD labels of a batch, accuracy per trial, and the true label among the n largest |c_k|",
    "fig6": "Fig. 6: sorted normalised amplitudes |c| and the densities of the runners-up",
    "fig7": "Fig. 7: denoising by projection on the top quasi-eigenvectors",
    "fig8": "Fig. 8: rotation through the labels along the quasi-eigenvectors",
}


@dataclass(frozen=True)
class PaperNumber:
    """One number of the paper, set beside the value at ``key`` (a path into the metrics dict).

    ``format`` is a format spec for a number; a {"mean", "std", "trials"} metric shows as
    "mean ± std (n trials)" with it.
    """

    name: str
    meaning: str
    paper: str
    key: tuple[str | int, ...]
    format: str


PAPER_NUMBERS: tuple[PaperNumber, ...] = (
    PaperNumber("classifier accuracy", "test images, classifier alone", "98.9%", ("classifier_accuracy",), ".1%"),
    PaperNumber(
        "encode-decode accuracy",
        "classifier on G(E(x)) against the label of x",
        "~94%",
        ("encode_decode_accuracy",),
        ".1%",
    ),
    PaperNumber("LSD top-1 accuracy", "label of the largest |c_k|", "~92%", ("lsd_top1_accuracy",), ".1%"),
    PaperNumber(
        "LSD within top 4",
        "true label among the labels of the 4 largest |c_k|",
        "98.9%",
        ("lsd_topn_cumulative", 3),
        ".1%",
    ),
    PaperNumber(
        "orthogonalisation",
        "how the etas became the quasi-eigenvectors used above",
        "gram-schmidt, Eqs. 4-7",
        ("orthogonalisation",),
        "s",
    ),
    PaperNumber(
        "LSD top-1, Gram-Schmidt",
        "the paper's basis, Eq. 5 order, same encodings",
        "~92%",
        ("lsd_by_orthogonalisation", "gram-schmidt", "top1"),
        ".1%",
    ),
    PaperNumber(
        "LSD within top 4, Gram-Schmidt",
        "the paper's basis, Eq. 5 order, same encodings",
        "98.9%",
        ("lsd_by_orthogonalisation", "gram-schmidt", "top4"),
        ".1%",
    ),
    PaperNumber(
        "LSD top-1, symmetric",
        "sets in order, a set's labels orthogonalised alike, Löwdin",
        "not in the paper",
        ("lsd_by_orthogonalisation", "symmetric", "top1"),
        ".1%",
    ),
    PaperNumber(
        "LSD within top 4, symmetric",
        "sets in order, a set's labels orthogonalised alike, Löwdin",
        "not in the paper",
        ("lsd_by_orthogonalisation", "symmetric", "top4"),
        ".1%",
    ),
    PaperNumber("latent dimension M", "size of z and number of quasi-eigenvectors", "100", ("latent_dim",), "d"),
    PaperNumber("vectors per set V", "latent vectors averaged into each eta", "5000", ("per_set",), "d"),
    PaperNumber(
        "quasi-eigenvector orthogonality",
        "max |<xi_a|xi_b>/C - delta_ab|",
        "orthogonal by construction",
        ("basis_orthogonality_error",),
        ".1e",
    ),
)


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2

    def markdown(self, out_dir: Path) -> str:
        return f"{'#' * self.level} {_markdown_text(self.text)}"

    def html(self) -> str:
        return f"<h{self.level}>{html.escape(self.text)}</h{self.level}>"


@dataclass(frozen=True)
class Paragraph:
    text: str

    def markdown(self, out_dir: Path) -> str:
        return _markdown_text(self.text)

    def html(self) -> str:
        return f"<p>{html.escape(self.text)}</p>"


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def markdown(self, out_dir: Path) -> str:
        cells = [[_markdown_text(cell, MARKDOWN_SPECIAL + "|") for cell in line] for line in (self.header, *self.rows)]
        lines = [cells[0], ["---"] * len(self.header), *cells[1:]]
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(cell)}</th>" for cell in self.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass(frozen=True)
class FigureRef:
    caption: str
    path: Path  # as the process opens it: absolute, or relative to the working directory

    def markdown(self, out_dir: Path) -> str:
        """The figure linked relative to the report in ``out_dir``, its caption below."""
        link = Path(os.path.relpath(self.path, out_dir)).as_posix()
        return f"![{_markdown_text(self.caption)}]({link})\n\n*{_markdown_text(self.caption)}*"

    def html(self) -> str:
        """The figure embedded as base64 PNG, so the page stands alone."""
        data = base64.b64encode(Path(self.path).read_bytes()).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(self.caption)}">'
            f"<figcaption>{html.escape(self.caption)}</figcaption></figure>"
        )


Block = Heading | Paragraph | Table | FigureRef


def _lookup(metrics: Any, key: Sequence[str | int]) -> Any:
    """``metrics[key[0]][key[1]]...``, or None where any step is missing."""
    value = metrics
    for part in key:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _format(value: Any, spec: str) -> str:
    """``value`` formatted with ``spec``; a trial metric as "mean ± std (n trials)"; None as an em dash."""
    if value is None:
        return MISSING
    if isinstance(value, Mapping):
        text = _format(value.get("mean"), spec)
        if value.get("std") is not None:
            text += f" ± {_format(value['std'], spec)}"
        if isinstance(value.get("trials"), Sequence):
            text += f" ({len(value['trials'])} trials)"
        return text
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    """A table; one row of em dashes when there is no data."""
    rows = rows or [[MISSING] * len(header)]
    return Table(tuple(header), tuple(tuple(row) for row in rows))


def _results_table(metrics: Mapping[str, Any]) -> Table:
    return _table(
        ("quantity", "paper", "this run"),
        [
            (f"{row.name} ({row.meaning})", row.paper, _format(_lookup(metrics, row.key), row.format))
            for row in PAPER_NUMBERS
        ],
    )


def _denoising_table(metrics: Mapping[str, Any]) -> Table:
    """Rows = methods; columns = accuracy and PSNR at each noise level sigma (Fig. 7)."""
    sigmas = _lookup(metrics, ("denoising", "sigmas")) or []
    columns = [
        (key, title, spec, index)
        for key, title, spec in (("accuracy", "accuracy", ".1%"), ("psnr", "PSNR (dB)", ".2f"))
        for index in range(len(sigmas))
    ]
    header = ["method", *(f"{title} σ={_format(sigmas[index], 'g')}" for _, title, _, index in columns)]
    rows = [
        [
            str(method),
            *(_format(_lookup(metrics, ("denoising", key, method, index)), spec) for key, _, spec, index in columns),
        ]
        for method in _lookup(metrics, ("denoising", "methods")) or []
    ]
    return _table(header, rows)


def _rotation_table(metrics: Mapping[str, Any]) -> Table:
    """Rows = rotation modes; columns = accuracy at the segment ends, overall and per target label (Fig. 8)."""
    targets = list(_lookup(metrics, ("rotation", "labels")) or [])[1:]
    header = ["mode", "overall", *(f"→ {target}" for target in targets)]
    rows = [
        [
            str(name),
            _format(_lookup(mode, ("segment_end_accuracy",)), ".1%"),
            *(_format(_lookup(mode, ("per_target", index)), ".1%") for index in range(len(targets))),
        ]
        for name, mode in (_lookup(metrics, ("rotation", "modes")) or {}).items()
    ]
    return _table(header, rows)


def _seconds_table(metrics: Mapping[str, Any]) -> Table:
    stages = _lookup(metrics, ("seconds",)) or {}
    return _table(("stage", "seconds"), [(str(stage), _format(seconds, ".1f")) for stage, seconds in stages.items()])


def _summary(metrics: Mapping[str, Any]) -> str:
    versions = _lookup(metrics, ("versions",)) or {}
    software = ", ".join(f"{name} {version}" for name, version in versions.items()) or MISSING
    return (
        f"A reproduction of {PAPER}: a GAN with latent dimension M = {_format(metrics.get('latent_dim'), 'd')}, "
        f"an encoder and a classifier; quasi-eigenvectors xi orthogonalised from the label-conditional latent "
        f"means eta ({_format(metrics.get('orthogonalisation'), '')}; the paper uses Gram-Schmidt), and the "
        f"Latent Spectral Decomposition c_k = <xi_k|z>/C. "
        f"Dataset: {_format(metrics.get('dataset'), '')}; seed: {_format(metrics.get('seed'), 'd')}; "
        f"software: {software}."
    )


def _rotation_note(metrics: Mapping[str, Any]) -> str:
    images, dtheta, steps = (_lookup(metrics, ("rotation", key)) for key in ("images", "dtheta", "steps"))
    return (
        f"{_format(images, 'd')} images rotated through the labels in steps of "
        f"dθ = {_format(dtheta, '.4g')} ({_format(steps, 'd')} steps); accuracy of the classifier at the end "
        f"of each segment."
    )


def _blocks(metrics: Mapping[str, Any], figures: Mapping[str, Path]) -> list[Block]:
    return [
        Heading(TITLE, level=1),
        Paragraph(_summary(metrics)),
        Heading("Results against the paper"),
        _results_table(metrics),
        Heading("Denoising (Fig. 7)"),
        Paragraph(
            f"{_format(_lookup(metrics, ('denoising', 'images')), 'd')} test images with Gaussian noise "
            f"of standard deviation σ; classifier accuracy and PSNR of each reconstruction."
        ),
        _denoising_table(metrics),
        Heading("Rotation (Fig. 8)"),
        Paragraph(_rotation_note(metrics)),
        _rotation_table(metrics),
        Heading("Time per stage"),
        _seconds_table(metrics),
        Heading("Figures"),
        *(FigureRef(FIGURE_CAPTIONS.get(name, name), Path(path)) for name, path in figures.items()),
    ]


def _markdown_text(text: str, special: str = MARKDOWN_SPECIAL) -> str:
    """``text`` with Markdown's special characters backslash-escaped, so that e.g. <xi_k|z> is not read as HTML."""
    return "".join(f"\\{char}" if char in special else char for char in text.replace("\n", " "))


def _render_markdown(blocks: Sequence[Block], out_dir: Path) -> str:
    return "\n\n".join(block.markdown(out_dir) for block in blocks) + "\n"


def _render_html(blocks: Sequence[Block], title: str = TITLE) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(block.html() for block in blocks) + "\n</body></html>\n"
    )


def results_table_markdown(metrics: Mapping[str, Any]) -> str:
    """The paper's headline numbers (classifier, encode-decode and LSD accuracies of Fig. 5, M, V,
    orthogonality of the quasi-eigenvectors) beside this run's, as a Markdown table."""
    return _results_table(metrics).markdown(Path())


def write_report(out_dir: Path, metrics: Mapping[str, Any], figures: Mapping[str, Path]) -> tuple[Path, Path]:
    """Write ``out_dir/report.md`` (figures linked relatively) and a self-contained ``out_dir/report.html``
    (figures embedded as base64 PNG), atomically. ``figures`` maps a name ("fig2" ... "fig8", captioned
    from FIGURE_CAPTIONS; any other name is its own caption) to a PNG path as this process opens it
    (absolute, or relative to the working directory, as ``out_dir`` itself). Returns the two paths."""
    return write_documents(out_dir, _blocks(metrics, figures), TITLE)


def write_documents(out_dir: Path, blocks: Sequence[Block], title: str) -> tuple[Path, Path]:
    """``blocks`` as ``out_dir/report.md`` (figures linked relatively) and a self-contained ``out_dir/report.html``
    titled ``title`` (figures embedded), atomically. Returns the two paths."""
    out_dir = Path(out_dir)
    markdown, page = _render_markdown(blocks, out_dir), _render_html(blocks, title)
    return _write_text(out_dir / "report.md", markdown), _write_text(out_dir / "report.html", page)


def _write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
