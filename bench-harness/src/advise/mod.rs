//! `tpslab advise`: names the toggle to try next from a chain's evidence (an experiment
//! step's figures, or a running testnet's), with the figure that points there, the direction
//! it should move, and why; for a chain with nothing left worth toggling, what limits it.
//! The rules are one table ([`rules::RULES`]); the advisor only evaluates it.

pub mod evidence;
pub mod live;
pub mod rules;

pub use evidence::{CpuShares, Evidence};
pub use rules::{Metric, Rule, RULES};

use crate::experiment::ExperimentResults;
use serde::Serialize;
use std::fmt::Write as _;

/// One rule that fired.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// The toggle to try (None for a limit).
    pub toggle: Option<String>,
    /// For a limit: what limits the chain.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub limit: String,
    /// The figure, in words.
    pub evidence: String,
    /// The figure and the threshold it met.
    pub value: f64,
    /// See `value`.
    pub threshold: f64,
    /// Where the figure should go once the toggle is on.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub expect: String,
    /// Why.
    pub why: String,
}

/// The advisor's reading of one chain.
#[derive(Clone, Debug, Serialize)]
pub struct Advice {
    /// What was read.
    pub source: String,
    /// The toggles that were on.
    pub enabled: Vec<String>,
    /// Toggles worth trying, best first (one finding per toggle: its first rule that fired).
    pub suggestions: Vec<Finding>,
    /// What limits the chain, most telling first.
    pub limits: Vec<Finding>,
    /// Rules not evaluated, with what their figure needs (once per need).
    pub not_evaluated: Vec<String>,
    /// The figures the rules read.
    pub figures: Evidence,
}

impl Advice {
    /// The toggle to try next, if any rule names one.
    pub fn next(&self) -> Option<&str> {
        self.suggestions.first().and_then(|f| f.toggle.as_deref())
    }
}

/// Evaluates [`RULES`] on `e`.
pub fn advise(e: &Evidence) -> Advice {
    let mut a = Advice {
        source: e.source.clone(),
        enabled: e.enabled.clone(),
        suggestions: Vec::new(),
        limits: Vec::new(),
        not_evaluated: Vec::new(),
        figures: e.clone(),
    };
    for rule in RULES {
        if rule.toggle.is_some_and(|t| e.on(t)) || !rule.requires.iter().all(|t| e.on(t)) {
            continue;
        }
        let Some(v) = rule.metric.value(e) else {
            let need = format!("{:?}: needs {}", rule.metric, rule.metric.needs());
            if !a.not_evaluated.contains(&need) {
                a.not_evaluated.push(need);
            }
            continue;
        };
        if v < rule.at_least {
            continue;
        }
        let finding = Finding {
            toggle: rule.toggle.map(str::to_string),
            limit: rule.limit.to_string(),
            evidence: format!(
                "{} (the rule fires at {})",
                rule.metric.describe(v),
                rule.metric.amount(rule.at_least)
            ),
            value: v,
            threshold: rule.at_least,
            expect: rule.expect.to_string(),
            why: rule.why.to_string(),
        };
        match rule.toggle {
            Some(t) if a.suggestions.iter().any(|f| f.toggle.as_deref() == Some(t)) => {}
            Some(_) => a.suggestions.push(finding),
            None if a.limits.iter().any(|f| f.limit == rule.limit) => {}
            None => a.limits.push(finding),
        }
    }
    a
}

/// The steps of a results file worth advising on: `step` by name, every step (`all`), or by
/// default each engine's last ladder step (the chain as tuned so far).
pub fn select<'r>(
    results: &'r ExperimentResults,
    step: Option<&str>,
    all: bool,
) -> Result<Vec<Evidence>, String> {
    let info = &results.info;
    let steps = &results.steps;
    let chosen: Vec<_> = match step {
        Some(name) => {
            let s = steps.iter().find(|s| s.name == name).ok_or_else(|| {
                let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
                format!(
                    "no step `{name}` in the results (steps: {})",
                    names.join(", ")
                )
            })?;
            vec![s]
        }
        None if all => steps.iter().collect(),
        None => {
            let mut last: Vec<&'r crate::experiment::StepResult> = Vec::new();
            for s in steps.iter().filter(|s| s.kind == "ladder") {
                match last.iter_mut().find(|l| l.engine == s.engine) {
                    Some(l) => *l = s,
                    None => last.push(s),
                }
            }
            last
        }
    };
    if chosen.is_empty() {
        return Err("the results hold no ladder step to advise on".into());
    }
    Ok(chosen
        .into_iter()
        .map(|s| {
            let mut e = Evidence::of_step(s, info);
            if steps.iter().any(|o| o.engine != s.engine) {
                e.source = format!("{} ({})", s.name, s.engine);
            }
            e
        })
        .collect())
}

/// The advice as text.
pub fn text(a: &Advice) -> String {
    let mut out = String::new();
    let on = if a.enabled.is_empty() {
        "none (baseline)".to_string()
    } else {
        a.enabled.join(", ")
    };
    let _ = writeln!(out, "{}  [toggles on: {on}]", a.source);
    match a.suggestions.first() {
        Some(f) => {
            let t = f.toggle.as_deref().unwrap_or("");
            let _ = writeln!(out, "  try next: {t}\n    evidence: {}", f.evidence);
            let _ = writeln!(out, "    expect: {}\n    why: {}", f.expect, f.why);
        }
        None => {
            let _ = writeln!(out, "  try next: no rule names a toggle that is still off");
        }
    }
    for f in a.suggestions.iter().skip(1) {
        let t = f.toggle.as_deref().unwrap_or("");
        let _ = writeln!(out, "  then: {t} ({})", f.evidence);
    }
    for (i, f) in a.limits.iter().enumerate() {
        let head = if i == 0 { "limited by" } else { "also" };
        let _ = writeln!(out, "  {head}: {}\n    evidence: {}", f.limit, f.evidence);
        if i == 0 {
            let _ = writeln!(out, "    why: {}", f.why);
        }
    }
    for n in &a.not_evaluated {
        let _ = writeln!(out, "  not evaluated: {n}");
    }
    out
}

#[cfg(test)]
mod tests;
