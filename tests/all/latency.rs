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

/// hello, with its listener's connection limits set low.
const LIMITED: &str = "[app]\nname = \"hello\"\n\
     [components.frontend]\nwasm = \"{wasm:hello_frontend}\"\n\
     [components.greeter]\nwasm = \"{wasm:hello_greeter}\"\n\
     [listeners.web]\ncomponent = \"frontend\"\naddress = \"127.0.0.1:0\"\n\
     header-timeout = \"1s\"\nidle-timeout = \"3s\"\nmax-connections = 3\n";

/// Whether the server closed `stream` within `wait`: a read that ends
/// (or fails) says so, one that times out says it is still open.
fn closed_within(stream: &mut std::net::TcpStream, wait: Duration) -> bool {
    use std::io::Read as _;
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn slow_idle_and_surplus_connections_are_closed() {
    each_mode(connections_are_bounded);
}

fn connections_are_bounded(mode: Mode) {
    use std::io::Write as _;
    use std::net::TcpStream;
    let dir = weft_tests::app_dir(LIMITED);
    let app = Weft::start(mode, &[dir.path().to_str().unwrap()]);
    let web = app.listeners["web"];
    // Slower than any timeout here, so a connection still open after it
    // was kept open.
    let patience = Duration::from_secs(8);

    // Half a request head, then nothing: closed after the header timeout.
    let mut half = TcpStream::connect(web).unwrap();
    half.write_all(b"GET /?name=Ada HTTP/1.1\r\nHo").unwrap();
    // Nothing at all: closed too.
    let mut silent = TcpStream::connect(web).unwrap();
    assert!(
        closed_within(&mut half, patience),
        "{mode:?}: a half-sent head kept its connection"
    );
    assert!(
        closed_within(&mut silent, patience),
        "{mode:?}: a silent client kept its connection"
    );

    // A kept-alive connection lives past the header timeout between
    // requests, and is closed once idle for the idle timeout.
    let mut kept = Connection::open(web);
    assert_eq!(kept.get("/?name=Ada").0, 200);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        kept.get("/?name=Ada").0,
        200,
        "{mode:?}: idle is not a slow head"
    );
    let mut raw = kept.into_stream();
    assert!(
        closed_within(&mut raw, patience),
        "{mode:?}: an idle connection stayed open"
    );

    // Three connections are the most it keeps: a fourth is closed at once,
    // and the three still work.
    let mut open: Vec<Connection> = (0..3).map(|_| Connection::open(web)).collect();
    for c in &mut open {
        assert_eq!(c.get("/?name=Ada").0, 200);
    }
    let mut surplus = TcpStream::connect(web).unwrap();
    let _ = surplus.write_all(b"GET /?name=Ada HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        closed_within(&mut surplus, Duration::from_millis(900)),
        "{mode:?}: a connection past max-connections was served"
    );
    for c in &mut open {
        assert_eq!(c.get("/?name=Ada").0, 200);
    }
    drop(open);
    // Their slots come back once they close.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(Connection::open(web).get("/?name=Ada").0, 200);
}
