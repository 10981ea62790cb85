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


def test_only_substance_columns_get_the_dimension_scaled_prior():
    """The GP reads x, a one-hot catalyst (its own categorical kernel), the solvent's
    one-hot and the solvent's descriptors: the solvent's columns and the descriptors
    appended after the space's own columns are the descriptor columns of the Matérn;
    x keeps the flat prior."""
    import jax

    from surrogates import kernel_from_dict
    from workbench.engine import fit_surrogate

    space = wb.SearchSpace([
        wb.Continuous("x", 0.0, 1.0),
        wb.Categorical("catalyst", ["a", "b"]),
        wb.Categorical("solvent", list(SOLVENTS), encoding="descriptors", smiles=SOLVENTS)])
    c = wb.Campaign("solv", space, [wb.Objective("y", "maximize")], tracking=None)
    problem = c.problem
    solvent = problem.columns["solvent"]
    assert problem.substance_columns == solvent
    rows = [{"x": x, "catalyst": k, "solvent": s} for s in SOLVENTS for k in "ab"
            for x in (0.2, 0.7)]
    X = space.encode(rows)
    Y = np.asarray([[r["x"] + len(SOLVENTS[r["solvent"]]) / 8.0] for r in rows])
    _, state = fit_surrogate(problem, X, Y, jax.random.key(0), len(rows), None)
    kernel = kernel_from_dict(state["kernel"])
    matern = next(k for k in kernel.kernels if k.name == "matern52")
    d = np.asarray(state["kernel_params"][0]["log_lengthscale"]).shape[-1]
    features = len(matern.active_dims) - 1 - len(solvent)  # appended descriptor columns
    assert features > 0
    assert matern.active_dims == (problem.columns["x"][0],) + solvent + tuple(
        range(space.dim, space.dim + features))
    assert matern.descriptor_dims == solvent + tuple(range(space.dim, space.dim + features))
    assert d == len(matern.active_dims)
