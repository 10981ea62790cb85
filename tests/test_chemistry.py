"""Substance encodings: RDKit descriptors and fingerprints of categorical choices."""

from __future__ import annotations

import numpy as np
import pytest

import workbench as wb

SOLVENTS = {  # name -> SMILES
    "water": "O", "methanol": "CO", "ethanol": "CCO", "propanol": "CCCO", "butanol": "CCCCO",
    "pentanol": "CCCCCO", "hexanol": "CCCCCCO", "toluene": "Cc1ccccc1",
}


def test_descriptor_table_matches_rdkit_values():
    from rdkit import Chem
    from rdkit.Chem import Descriptors

    from workbench.chemistry import DESCRIPTORS, substance_table

    names = ["water", "ethanol", "toluene"]
    table = substance_table("solvent", names, SOLVENTS, "descriptors")
    assert table.shape[0] == 3 and np.all((table >= 0) & (table <= 1))
    raw = np.asarray([[getattr(Descriptors, d)(Chem.MolFromSmiles(SOLVENTS[n]))
                       for d in DESCRIPTORS] for n in names])
    varying = raw.max(0) > raw.min(0)
    expected = (raw[:, varying] - raw.min(0)[varying]) / np.ptp(raw, axis=0)[varying]
    np.testing.assert_allclose(table, expected)
    weight = list(DESCRIPTORS).index("MolWt")
    assert raw[1, weight] == pytest.approx(46.069, abs=1e-3)  # ethanol
    bits = substance_table("solvent", names, SOLVENTS, "fingerprint")
    assert set(np.unique(bits)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="SMILES of 'water'.*not valid"):
        substance_table("solvent", ["water", "ethanol"], {"water": "C1CC", "ethanol": "CCO"},
                        "descriptors")


def test_bad_encodings_are_refused_at_once():
    with pytest.raises(ValueError, match=r"no SMILES for \['b'\]"):
        wb.Categorical("s", ["a", "b"], encoding="descriptors", smiles={"a": "C"})
    space = wb.SearchSpace([wb.Categorical("s", ["a", "b"], encoding="descriptors",
                                           smiles={"a": "C", "b": "not a smiles(("})])
    with pytest.raises(wb.CampaignError, match="SMILES of 'b'"):
        wb.Campaign("c", space, [wb.Objective("y", "maximize")], tracking=None)


def test_descriptors_generalise_to_an_unseen_substance():
    """y depends on the solvent's logP: trained on seven solvents, the descriptor model
    predicts the eighth far better than exchangeable one-hot categories can."""
    from rdkit import Chem
    from rdkit.Chem import Crippen

    import jax

    from workbench.engine import fit_surrogate

    logp = {k: Crippen.MolLogP(Chem.MolFromSmiles(v)) for k, v in SOLVENTS.items()}
    held_out = "pentanol"
    errors = {}
    for encoding in ("onehot", "descriptors"):
        space = wb.SearchSpace([
            wb.Continuous("x", 0.0, 1.0),
            wb.Categorical("solvent", list(SOLVENTS), encoding=encoding,
                           smiles=SOLVENTS if encoding != "onehot" else None)])
        c = wb.Campaign("solv", space, [wb.Objective("y", "maximize")], tracking=None)
        rows = [{"x": x, "solvent": s} for s in SOLVENTS if s != held_out
                for x in (0.1, 0.5, 0.9)]
        f = lambda r: float(np.sin(3 * r["x"]) + logp[r["solvent"]])
        X = space.encode(rows)
        Y = np.asarray([[f(r) for r in rows]])
        model, _ = fit_surrogate(c.problem, X, Y.T, jax.random.key(0), len(rows), None)
        test = [{"x": x, "solvent": held_out} for x in (0.2, 0.5, 0.8)]
        mean = np.asarray(model.posterior(space.encode(test)).mean)[:, 0]
        errors[encoding] = float(np.sqrt(np.mean((mean - [f(r) for r in test]) ** 2)))
    assert errors["descriptors"] < 0.5 * errors["onehot"], errors


def test_principal_components_keep_the_fingerprints_distances():
    """With as many components as the substances span, the components' pairwise distances
    are the fingerprint bits' times one constant; with fewer, each distance is at most
    that (a projection), and the first two keep most of the spread."""
    from scipy.spatial.distance import pdist

    from workbench.chemistry import principal_components, substance_table

    names = list(SOLVENTS)
    bits = substance_table("solvent", names, SOLVENTS, "fingerprint")
    full = substance_table("solvent", names, SOLVENTS, "fingerprint",
                           components=len(names) - 1)
    assert full.shape == (len(names), np.linalg.matrix_rank(bits - bits.mean(0)))
    assert full.min() == 0.0 and full.max() == pytest.approx(1.0)
    apart = pdist(bits) > 0  # the longer alcohols share every radius-2 environment
    assert not apart.all() and np.all(pdist(full)[~apart] < 1e-12)
    ratio = pdist(full)[apart] / pdist(bits)[apart]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)
    two = principal_components(bits, 2)
    assert two.shape == (len(names), 2)
    assert np.all(pdist(two) / ratio[0] <= pdist(bits) + 1e-9)
    kept = np.sum(pdist(two) ** 2) / ratio[0] ** 2 / np.sum(pdist(bits) ** 2)
    s = np.linalg.svd(bits - bits.mean(0), compute_uv=False)
    assert kept == pytest.approx(np.sum(s[:2] ** 2) / np.sum(s ** 2), rel=1e-9)


def test_components_campaign_proposes_from_a_pool_and_bad_values_are_refused(tmp_path):
    """A campaign whose solvent is 3 fingerprint components proposes pool rows; the
    surrogate sees the encoded columns and the 3 components."""
    import pandas as pd

    pool = pd.DataFrame([{"x": x, "solvent": s} for s in SOLVENTS for x in (0.2, 0.5, 0.8)])
    pool.to_csv(tmp_path / "pool.csv", index=False)
    logp = {"water": -0.7, "methanol": -0.4, "ethanol": 0.0, "propanol": 0.4,
            "butanol": 0.8, "pentanol": 1.2, "hexanol": 1.6, "toluene": 2.3}
    c = wb.Campaign.from_dict({
        "name": "pca", "budget": 8, "seed": 1, "store": None, "tracking": None,
        "space": [{"name": "x", "type": "continuous", "low": 0, "high": 1},
                  {"name": "solvent", "type": "categorical", "choices": list(SOLVENTS),
                   "encoding": "fingerprint", "smiles": SOLVENTS, "components": 3}],
        "objectives": [{"name": "y", "direction": "maximize"}],
        "initial_design": {"n": 5}, "candidates": {"csv": str(tmp_path / "pool.csv")}})
    rows = {(r["x"], r["solvent"]) for r in pool.to_dict("records")}
    seen = []
    while len(seen) < 8:
        for t in c.ask(1):
            key = (float(t.params["x"]), t.params["solvent"])
            assert key in rows and key not in seen
            seen.append(key)
            c.tell(t.id, {"y": float(np.sin(3 * key[0]) + logp[key[1]])})
    X = c.problem.space.encode(pool.to_dict("records"))
    assert np.asarray(c.problem.feature_transform()(X)).shape == (len(pool), X.shape[1] + 3)
    with pytest.raises(ValueError, match=r"components: got 8; expected at most 7"):
        wb.Categorical("s", list(SOLVENTS), encoding="fingerprint", smiles=SOLVENTS,
                       components=8)
    with pytest.raises(ValueError, match=r"components: got 2 with encoding 'onehot'"):
        wb.Categorical("s", ["a", "b", "c"], components=2)
