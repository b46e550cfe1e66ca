//! `sim-kubectl`: the kubectl of the simulated cluster (`weft_tests::Cluster`).
//! It hands its arguments and standard input to the test that runs the
//! cluster, over the Unix socket that `$WEFT_SIM_KUBECTL` names, and prints
//! what the cluster answers, with its exit code. The commands it knows are
//! those weft runs: see `tests/harness/cluster/kubectl.rs`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

fn main() {
    let socket = match std::env::var("WEFT_SIM_KUBECTL") {
        Ok(s) => s,
        Err(_) => {
            eprintln!("sim-kubectl: $WEFT_SIM_KUBECTL must name the simulated cluster's socket");
            std::process::exit(2);
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut input = String::new();
    if args.windows(2).any(|w| w[0] == "-f" && w[1] == "-") {
        std::io::stdin()
            .read_to_string(&mut input)
            .expect("read standard input");
    }
    let mut stream = UnixStream::connect(&socket).unwrap_or_else(|e| {
        eprintln!("sim-kubectl: cannot reach the simulated cluster at {socket}: {e}");
        std::process::exit(2);
    });
    let request = serde_json::json!({ "args": args, "stdin": input });
    stream.write_all(request.to_string().as_bytes()).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap_or_else(|e| {
        eprintln!("sim-kubectl: the simulated cluster answered no JSON ({e}): {answer}");
        std::process::exit(2);
    });
    print!("{}", answer["stdout"].as_str().unwrap_or_default());
    eprint!("{}", answer["stderr"].as_str().unwrap_or_default());
    std::process::exit(answer["code"].as_i64().unwrap_or(1) as i32);
}
