//! Printing a verdict and judging it (PASS, FAIL, caught, INCOMPLETE).

use super::cli::*;
use super::jobs::*;
use gsmo_model::verdict::{Outcome, Verdict};
use stateright::Expectation;

pub(crate) fn expectation(e: &Expectation) -> &'static str {
    match e {
        Expectation::Always => "always",
        Expectation::Eventually => "eventually",
        Expectation::Sometimes => "sometimes",
    }
}

pub(crate) fn thousands(k: usize) -> String {
    let s = k.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Prints a verdict and judges it.
pub(crate) fn print_verdict(job: &Job, v: &Verdict) -> Outcome {
    let props: Vec<String> = v
        .properties
        .iter()
        .map(|(name, e)| format!("{} {name}", expectation(e)))
        .collect();
    println!("   properties: {}", props.join(", "));
    println!(
        "   {} unique states{}, {} total, depth {}, {:.2} s, {:.0} states/s{}",
        thousands(v.unique_states),
        if v.symmetry {
            " (up to renaming nodes)"
        } else {
            ""
        },
        thousands(v.total_states),
        v.max_depth,
        v.elapsed.as_secs_f64(),
        v.states_per_second(),
        if v.complete {
            ""
        } else {
            " (INCOMPLETE: not every state was explored)"
        }
    );
    match (v.peak_rss, v.parts) {
        // A finished part's states are freed: the peak holds a few parts', not the whole's.
        (Some(rss), Some((parts, at_once))) => println!(
            "   checked in {parts} parts, {at_once} at a time; peak RSS {:.1} MB",
            rss as f64 / 1e6
        ),
        (Some(rss), None) => println!(
            "   peak RSS {:.1} MB, {} bytes per unique state",
            rss as f64 / 1e6,
            thousands((rss / v.unique_states.max(1) as u64) as usize)
        ),
        (None, Some((parts, at_once))) => {
            println!("   checked in {parts} parts, {at_once} at a time")
        }
        (None, None) => {}
    }
    for f in v.failures() {
        println!(
            "   counterexample to {} \"{}\", {}:",
            expectation(&f.expectation),
            f.property,
            plural(f.path.len() as u64, "step")
        );
        for (k, step) in f.path.iter().enumerate() {
            println!("     {:>3}. {step}", k + 1);
        }
        if f.expectation == Expectation::Eventually {
            println!("          ... and nothing more can happen.");
        }
        if let Some(why) = &f.why {
            println!("     => {why}");
        }
    }
    for p in &v.panics {
        println!(
            "   PANIC in a model step: {p} (where: on stderr above); the states past it were not explored"
        );
    }
    for name in v.vacuous() {
        if job.promises.is_some() {
            println!("   note: the broken variant never reaches \"{name}\"");
        } else {
            println!(
                "   VACUOUS: no run reaches sometimes \"{name}\": part of the model never runs, \
                 so the other properties may hold for the wrong reason"
            );
        }
    }
    if !v.complete {
        let missing: Vec<_> = v
            .properties
            .iter()
            .filter(|(name, e)| *e == Expectation::Sometimes && v.finding(name).is_none())
            .map(|(name, _)| format!("\"{name}\""))
            .collect();
        if !missing.is_empty() {
            println!(
                "   note: no example yet of {} (the run is incomplete)",
                missing.join(", ")
            );
        }
    }
    let outcome = v.judge(job.promises);
    let violated: Vec<&str> = v.failures().map(|f| f.property).collect();
    let verdict = match (outcome, job.promises) {
        (Outcome::Pass, _) if !v.complete => {
            "INCOMPLETE (no violation in the states explored; not a proof)".to_string()
        }
        (Outcome::Pass, _) => "PASS".to_string(),
        (Outcome::Fail, _) if !v.panics.is_empty() => "FAIL (a model step panicked)".to_string(),
        (Outcome::Fail, _) => "FAIL".to_string(),
        (Outcome::Caught, Some(p)) => {
            format!("FAIL (expected: broken variant caught by \"{p}\")")
        }
        (_, p) => format!(
            "NOT CAUGHT (UNEXPECTED: the broken variant must violate \"{}\", which held{})",
            p.unwrap_or_default(),
            if violated.is_empty() {
                String::new()
            } else {
                format!("; it violated only {}", violated.join(", "))
            }
        ),
    };
    println!("   {verdict}");
    outcome
}
