//! The explorer a person can read, tested through its HTTP API: stateright's
//! own server on a free port, walked like a browser walks it (`/.states/...`).
//! Every action and state must be in gsmo's text language (a key as text, no
//! derived `Debug` of a message), and the picture of a path through a
//! snapshot must draw the cut and the message it recorded in flight.

use gsmo_model::explore::Explorer;
use gsmo_model::KvCfg;
use gsmo_spec::multicast::Mode;
use serde_json::Value;
use stateright::Model;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// One GET; `None` while the server is not up yet.
fn get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{path}: {head}\n{body}"
    );
    Some(body.to_string())
}

/// Serves the explorer for `model` on a free port; returns its address once it answers.
fn serve<M>(model: M) -> String
where
    M: gsmo_model::explore::Presented + Send + Sync + 'static,
    M::State: Clone + std::fmt::Debug + std::hash::Hash + PartialEq + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let bind = addr.clone();
    // stateright's `serve` blocks for good; the thread ends with the test process.
    std::thread::spawn(move || {
        Explorer::new(model).checker().threads(1).serve(bind);
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = get(&addr, "/.status") {
            assert!(status.contains("\"properties\""), "{status}");
            return addr;
        }
        assert!(
            Instant::now() < deadline,
            "the explorer never answered on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What no readable label or state may contain: derived `Debug` of the spec's
/// messages and states, stateright's ids, keys as byte arrays.
const RAW: [&str; 9] = [
    "Msg {",
    "Envelope",
    "Sequencer(",
    "Data {",
    "Id(",
    "[120]",
    "ReplicaState",
    "payload",
    "Stamp",
];

fn assert_readable(what: &str, text: &str) {
    for raw in RAW {
        assert!(!text.contains(raw), "{what} shows raw `{raw}`:\n{text}");
    }
}

fn steps(addr: &str, path: &str) -> Vec<Value> {
    let body = get(addr, path).expect("the explorer answers");
    let steps: Vec<Value> = serde_json::from_str(&body).unwrap();
    for s in &steps {
        for field in ["action", "outcome", "state"] {
            if let Some(text) = s[field].as_str() {
                assert_readable(&format!("{path} {field}"), text);
            }
        }
    }
    steps
}

#[test]
fn the_explorer_speaks_gsmo_and_draws_the_cut() {
    let addr = serve(KvCfg::new(Mode::TotalSequencer).into_model());
    let init = steps(&addr, "/.states");
    assert_eq!(init.len(), 1);
    let state = init[0]["state"].as_str().unwrap();
    assert!(state.starts_with("n0  acct:0=1 acct:1=1 "), "{state}");

    // n0 starts a snapshot, then n1 writes: n1's write reaches n0 after n0
    // recorded and before n1's marker, so the snapshot records it in flight.
    // Then every message is delivered, oldest channel first, until none is left.
    let mut path = "/.states/0".to_string();
    let mut last = None;
    let mut labels = Vec::new();
    let mut states = Vec::new();
    for want in ["n0 starts a snapshot", "n1 writes"] {
        let next = steps(&addr, &path);
        let step = next
            .iter()
            .find(|s| s["action"] == want)
            .unwrap_or_else(|| panic!("no action `{want}` in {next:#?}"));
        path.push_str(&format!("/{}", step["actionIndex"]));
        labels.push(want.to_string());
        last = Some(step.clone());
    }
    for _ in 0..40 {
        let next = steps(&addr, &path);
        let Some(step) = next
            .iter()
            .find(|s| s["action"].as_str().unwrap().contains(" → "))
        else {
            break;
        };
        path.push_str(&format!("/{}", step["actionIndex"]));
        labels.push(step["action"].as_str().unwrap().to_string());
        states.push(step["state"].as_str().unwrap().to_string());
        last = Some(step.clone());
    }
    let last = last.unwrap();
    let labels = labels.join("\n");
    // The counterexample language: the write with its key and value as text.
    assert!(
        labels.contains("n1 → n0  [1 ack 0] submit data n1#1 LPUSH x 1.1"),
        "{labels}"
    );
    assert!(labels.contains("n0 → n1  [1 ack 0] marker 0-1"), "{labels}");
    assert!(labels.contains("] order n1#1 = 1"), "{labels}");

    let state = last["state"].as_str().unwrap();
    assert!(state.contains("n0  acct:0=1 acct:1=1 x=[1.1]"), "{state}");
    assert!(state.contains("n1  acct:0=1 acct:1=1 x=[1.1]"), "{state}");
    // The parts show until the commit, which lets them go (judged by then).
    let recorded = "snapshot 0-1: done, recorded acct:0=1 acct:1=1  delivered [0,0]; in flight from n1: submit data n1#1 LPUSH x 1.1";
    assert!(states.iter().any(|s| s.contains(recorded)), "{states:#?}");
    assert!(
        state
            .contains("snapshot 0-1: committed (judged when every part was complete, then let go)"),
        "{state}"
    );
    assert!(state.contains("in flight: nothing"), "{state}");

    let svg = last["svg"].as_str().unwrap();
    assert_readable("svg", svg);
    assert_eq!(svg.matches("class='timeline'").count(), 2, "{svg}");
    assert!(
        svg.contains("<polyline class='cut' data-snapshot='0-1'"),
        "{svg}"
    );
    // The recorded write (the legend has one more).
    assert_eq!(svg.matches("<line class='recorded'").count(), 2, "{svg}");
    assert!(svg.contains("n1#1 LPUSH x 1.1"), "{svg}");
}
