//! The weights of a height's epoch, checked as far as genesis allows:
//! recomputed at epoch 0, bounded and formula-checked after (telemetry).

use super::fail;
use crate::error::VerifyError;
use crate::wq_proof::Telemetry;
use bizra_consensus::chain::ChainState;
use bizra_consensus::genesis::Genesis;
use bizra_consensus::types::epoch_of;
use bizra_consensus::weights::{self, Components};
use ed25519_dalek::VerifyingKey;
use std::collections::{BTreeMap, BTreeSet};

/// The weights of the epoch of `height`, checked as far as genesis allows (see
/// the module docs): recomputed at epoch 0, bounded and formula-checked after.
pub fn epoch_weights(
    g: &Genesis,
    height: u64,
    telemetry: Option<&Telemetry>,
    field: &str,
) -> Result<(BTreeMap<String, u128>, bool), VerifyError> {
    let p = g.params();
    let epoch = epoch_of(height, p.epoch_length);
    if epoch == 0 {
        let w = ChainState::genesis(g).weights;
        let expected: BTreeMap<String, (u128, Components)> = g
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.clone(), (w.weights[i], w.components[i])))
            .collect();
        if let Some(t) = telemetry {
            check_telemetry_keys(g, t, field)?;
            if let Some(id) = t.jailed.keys().next() {
                return Err(fail(
                    &format!("{field}.jailed[{id}]"),
                    "nobody is jailed in epoch 0 (evidence jails from the next boundary)",
                ));
            }
            for (id, (weight, comps)) in &expected {
                let got = t.wq_weight[id].0;
                if got != *weight {
                    return Err(fail(
                        &format!("{field}.wq_weight[{id}]"),
                        format!("{got} in the proof, {weight} recomputed from genesis (epoch 0)"),
                    ));
                }
                let gc: Components = t.components[id].into();
                if gc != *comps {
                    return Err(fail(
                        &format!("{field}.components[{id}]"),
                        format!("{gc:?} in the proof, {comps:?} from genesis (epoch 0)"),
                    ));
                }
            }
        }
        return Ok((expected.into_iter().map(|(k, v)| (k, v.0)).collect(), true));
    }
    let t = telemetry.ok_or_else(|| {
        fail(
            field,
            format!("missing: height {height} is in epoch {epoch}, whose weights genesis alone does not give"),
        )
    })?;
    check_telemetry_keys(g, t, field)?;
    for m in g.members.iter() {
        let c = t.components[&m.id];
        let cf = format!("{field}.components[{}]", m.id);
        if c.stake != m.stake {
            return Err(fail(
                &cf,
                format!("stake {} differs from genesis stake {}", c.stake, m.stake),
            ));
        }
        if c.rep > 10_000 {
            return Err(fail(&cf, format!("rep {} is above 10000 bps", c.rep)));
        }
        if c.poi > p.weights.poi_cap {
            return Err(fail(
                &cf,
                format!("poi {} is above poi_cap {}", c.poi, p.weights.poi_cap),
            ));
        }
        let got = t.wq_weight[&m.id].0;
        if let Some(&until) = t.jailed.get(&m.id) {
            // Jailed (ADR 0014): weight 0 until `until`, which must lie ahead.
            if until <= epoch {
                return Err(fail(
                    &format!("{field}.jailed[{}]", m.id),
                    format!("free again from epoch {until}, so not jailed in epoch {epoch}"),
                ));
            }
            if got != 0 {
                return Err(fail(
                    &format!("{field}.wq_weight[{}]", m.id),
                    format!("{got}, but a jailed validator weighs 0"),
                ));
            }
            continue;
        }
        let want = weights::wq_weight(&p.weights, &c.into());
        if got != want {
            return Err(fail(
                &format!("{field}.wq_weight[{}]", m.id),
                format!("{got} does not match the wq_weight formula of its components ({want})"),
            ));
        }
    }
    if let Some(id) = t.jailed.keys().find(|id| g.members.index_of(id).is_none()) {
        return Err(fail(&format!("{field}.jailed[{id}]"), "is not a genesis validator"));
    }
    Ok((t.wq_weight.iter().map(|(k, v)| (k.clone(), v.0)).collect(), false))
}

fn check_telemetry_keys(g: &Genesis, t: &Telemetry, field: &str) -> Result<(), VerifyError> {
    for (name, keys) in [
        ("wq_weight", t.wq_weight.keys().collect::<BTreeSet<_>>()),
        ("components", t.components.keys().collect::<BTreeSet<_>>()),
    ] {
        let f = format!("{field}.{name}");
        for m in g.members.iter() {
            if !keys.contains(&m.id) {
                return Err(fail(&f, format!("genesis validator {} is missing", m.id)));
            }
        }
        if let Some(extra) = keys.iter().find(|k| g.members.index_of(k).is_none()) {
            return Err(fail(&f, format!("{extra} is not a genesis validator")));
        }
    }
    Ok(())
}

/// Telemetry weights as they are, requiring one per member of `keys` and no
/// others. Used by `bizra wq-proof`, which has no genesis to check them against.
pub fn telemetry_weights(
    t: &Telemetry,
    keys: &BTreeMap<String, VerifyingKey>,
) -> Result<BTreeMap<String, u128>, VerifyError> {
    for id in keys.keys() {
        if !t.wq_weight.contains_key(id) {
            return Err(fail("telemetry.wq_weight", format!("validator {id} is missing")));
        }
    }
    if let Some(extra) = t.wq_weight.keys().find(|k| !keys.contains_key(*k)) {
        return Err(fail(
            "telemetry.wq_weight",
            format!("{extra} is not in the validator set"),
        ));
    }
    Ok(t.wq_weight.iter().map(|(k, v)| (k.clone(), v.0)).collect())
}
