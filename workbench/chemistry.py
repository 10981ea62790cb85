"""Substance encodings: molecular descriptors and fingerprints from SMILES.

RDKit is an optional extra (``pip install "sciworkbench[chem]"``); it is
imported only when a categorical parameter asks for ``encoding: descriptors``
or ``fingerprint``.
"""

from __future__ import annotations

import numpy as np

#: RDKit descriptors used by ``encoding: descriptors`` (a small, interpretable set).
DESCRIPTORS = ("MolWt", "MolLogP", "TPSA", "NumHDonors", "NumHAcceptors",
               "NumRotatableBonds", "RingCount", "FractionCSP3", "HeavyAtomCount")
FINGERPRINT_BITS = 256


def _rdkit(what: str):
    try:
        from rdkit import Chem, RDLogger
    except ImportError:
        raise ImportError(f"{what} needs RDKit: pip install 'sciworkbench[chem]'") from None
    RDLogger.DisableLog("rdApp.*")
    return Chem


def substance_table(name: str, choices: list[str], smiles: dict[str, str],
                    encoding: str) -> np.ndarray:
    """(choices, features) table for a categorical parameter, each column scaled to
    [0, 1] over the choices; columns that do not vary are dropped (they carry no
    information). ValueError names a SMILES that RDKit cannot read."""
    Chem = _rdkit(f"parameter {name!r} with encoding {encoding!r}")
    rows = []
    for c in choices:
        mol = Chem.MolFromSmiles(smiles[c])
        if mol is None:
            raise ValueError(f"parameter '{name}': SMILES of {c!r} ({smiles[c]!r}) is not"
                             " valid; expected a SMILES string RDKit can parse")
        if encoding == "descriptors":
            from rdkit.Chem import Descriptors

            rows.append([float(getattr(Descriptors, d)(mol)) for d in DESCRIPTORS])
        else:
            from rdkit.Chem import rdFingerprintGenerator

            gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=FINGERPRINT_BITS)
            rows.append(list(gen.GetFingerprintAsNumPy(mol).astype(float)))
    table = np.asarray(rows)
    lo, hi = table.min(axis=0), table.max(axis=0)
    keep = hi > lo
    if not keep.any():
        raise ValueError(f"parameter '{name}': the {encoding} of every choice are equal;"
                         " expected substances that differ")
    return (table[:, keep] - lo[keep]) / (hi[keep] - lo[keep])
