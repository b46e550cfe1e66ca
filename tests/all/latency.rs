//! No protocol stalls: a request on a kept-alive connection, as `wrk` or a
//! browser sends it, is answered without waiting on Nagle's algorithm and
//! the peer's delayed ACK (a 40 ms stall on Linux). Timing is otherwise
//! the benchmark's job; a stall of 40 ms is not noise, so the median of 20
//! requests against a 30 ms bound cannot flake on a slow machine but does
//! fail on a stall.

use std::time::{Duration, Instant};
use weft_tests::{Connection, Mode, Weft, each_mode};

/// Far above a loopback request on an idle machine (under 2 ms), and
/// below the 40 ms of a delayed ACK.
const STALL: Duration = Duration::from_millis(30);

#[test]
fn kept_alive_requests_do_not_stall() {
    each_mode(no_stall);
}

fn no_stall(mode: Mode) {
    let app = Weft::start(mode, &["samples/hello", "--listen", "web=127.0.0.1:0"]);
    let mut connection = Connection::open(app.listeners["web"]);
    // The first requests warm the instance pools and the connections behind
    // the listener; Linux also acknowledges a new connection's first
    // segments at once, which would hide a stall.
    for _ in 0..5 {
        assert_eq!(connection.get("/?name=Ada").0, 200);
    }
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            let start = Instant::now();
            let (status, body) = connection.get("/?name=Ada&lang=en,fr");
            let took = start.elapsed();
            assert_eq!(
                (status, body.as_str()),
                (200, "en: Hello, Ada!\nfr: Bonjour, Ada!\n")
            );
            took
        })
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    assert!(
        median < STALL,
        "{mode:?}: the median of 20 requests on one connection took {median:?} (all: {times:?}); \
         a stall near 40 ms means a socket without TCP_NODELAY"
    );
}
