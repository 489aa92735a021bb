"""The studies and commands that compose the rest: `train`, `evaluate`, `basis`, `reproduce` (the paper's
study), `sfvq`, `reds` and `fragmentation`; `networks` loads a models directory as inference copies and
`common` holds what every study shares."""
