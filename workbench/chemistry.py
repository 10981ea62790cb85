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
# Singular values below this share of the largest are zero (the rows span fewer axes).
_RANK_TOLERANCE = 1e-9


def _rdkit(what: str):
    try:
        from rdkit import Chem, RDLogger
    except ImportError:
        raise ImportError(f"{what} needs RDKit: pip install 'sciworkbench[chem]'") from None
    RDLogger.DisableLog("rdApp.*")
    return Chem


def substance_table(name: str, choices: list[str], smiles: dict[str, str],
                    encoding: str, components: int | None = None) -> np.ndarray:
    """(choices, features) table for a categorical parameter, each column scaled to
    [0, 1] over the choices; columns that do not vary are dropped (they carry no
    information). With ``components`` k, the table's first k principal components
    instead (:func:`principal_components`): a fingerprint of hundreds of bits becomes a
    few columns that keep how far apart the substances are. ValueError names a SMILES
    that RDKit cannot read."""
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
    scaled = (table[:, keep] - lo[keep]) / (hi[keep] - lo[keep])
    return scaled if components is None else principal_components(scaled, components)


def principal_components(table: np.ndarray, k: int) -> np.ndarray:
    """The (rows, k') scores of ``table``'s rows on its first k principal axes (k' = k,
    or fewer when the rows span fewer dimensions), shifted so each column starts at 0
    and divided by one common factor so that all lie in [0, 1]: the rows' pairwise
    Euclidean distances are those of the projected table times one constant (all of
    them, exactly, when k' is the rows' rank). Each axis's sign makes its largest
    score positive, so the result does not depend on the linear algebra library."""
    centred = table - table.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    rank = int(np.sum(s > _RANK_TOLERANCE * s[0]))
    scores = u[:, :min(k, rank)] * s[:min(k, rank)]
    flip = np.sign(scores[np.argmax(np.abs(scores), axis=0), np.arange(scores.shape[1])])
    scores = scores * flip
    scores -= scores.min(axis=0)
    return scores / scores.max()
