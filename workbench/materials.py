"""Materials helpers: element property tables for composition descriptors.

Properties come from pymatgen's periodic table (imported only when a
composition asks for features).
"""

from __future__ import annotations

import numpy as np

from workbench.space import Composition, SearchSpace


def element_properties(elements: list[str], features: list[str]) -> np.ndarray:
    """(k, f) table of pymatgen ``Element`` properties (units stripped)."""
    from pymatgen.core import Element

    table = np.empty((len(elements), len(features)))
    for i, e in enumerate(elements):
        for j, f in enumerate(features):
            value = getattr(Element(e), f)
            if value is None:
                raise ValueError(f"pymatgen has no {f} for {e}; choose other features")
            table[i, j] = float(value)
    return table


def feature_transform(space: SearchSpace):
    """The input transform that appends composition descriptors (element
    properties) and substance descriptors (RDKit, from SMILES), or None when no
    parameter of ``space`` asks for features."""
    from surrogates.transforms import Chain, OneHotFeatures, SimplexFeatures

    from workbench.space import Categorical

    parts, col = [], 0
    for p in space.parameters:
        if isinstance(p, Categorical) and p.encoding != "onehot":
            from workbench.chemistry import substance_table

            table = substance_table(p.name, list(p.choices), p.smiles, p.encoding)
            parts.append(OneHotFeatures(np.arange(col, col + p.columns), table))
        if isinstance(p, Composition) and p.features:
            cols = np.arange(col, col + p.columns)
            lows = np.asarray(p.lows)
            spans = np.asarray(p.highs) - lows
            parts.append(SimplexFeatures(cols, lows, spans,
                                         element_properties(p.elements, p.features)))
        col += p.columns
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else Chain(tuple(parts))
