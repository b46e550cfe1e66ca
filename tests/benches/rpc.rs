//! (d): cross-process calls through weft against a hand-written tonic echo.
//!
//! The weft side: this process links the benchmark's `caller` with its
//! import routed to a `weft worker` process that hosts `callee`, as a split
//! deployment would, and times the caller's `bytes-loop(1, size)`: one
//! `echo-bytes` call through the forwarder, the codec, gRPC, the worker's
//! instance and back. The baseline: a tonic client in this process calling
//! a tonic server in another process (this binary, started again) whose
//! handler returns the request's payload; it sends the same message type
//! with the same header fields and payload length as weft's call.
//!
//! A third side splits the difference: a tonic client calling the weft
//! worker directly, with the message weft's caller sends, shows what the
//! callee's side adds; the rest is the caller's guest and forwarder.
//!
//! weft's calls are mutual TLS, as every call between weft's processes is;
//! the baseline is plain tonic over cleartext HTTP/2, so the ratios include
//! what TLS costs. A new connection's handshake is timed apart, against a
//! cleartext connect to the baseline.
//!
//! Baseline and weft are timed in alternating turns, so drift hits both.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};
use wasmtime::component::Val;
use weft_placer::Plan;
use weft_proto::v1::invoke_client::InvokeClient;
use weft_proto::v1::invoke_server::{Invoke, InvokeServer};
use weft_proto::v1::{
    CallReply, CallRequest, ReleaseReply, ReleaseRequest, RenewReply, RenewRequest,
};
use weft_runtime::app::{App, Placement, Prepared};
use weft_runtime::cache::CompileCache;
use weft_runtime::codec::{self, ValueType};
use weft_runtime::manifest::ManifestFile;
use weft_runtime::pool::InstancePool;
use weft_runtime::rpc::client::Replicas;
use weft_runtime::rpc::identity::{Authority, Identity};
use weft_runtime::rpc::{Dialer, Peer};
use weft_tests::{Assign, AssignedWorker, target_dir};

const MAX_MESSAGE: usize = weft_runtime::rpc::MAX_MESSAGE;
/// Calls per side per turn, and turns, for the latency figures.
const CALLS: usize = 100;
const TURNS: usize = 20;
/// Concurrent callers, and how long each throughput turn lasts.
const CONCURRENCY: usize = 16;
const THROUGHPUT_TURN: Duration = Duration::from_millis(1500);
const THROUGHPUT_TURNS: usize = 3;

/// The baseline's server: echoes the payload back.
struct Echo;

#[tonic::async_trait]
impl Invoke for Echo {
    async fn call(&self, request: Request<CallRequest>) -> Result<Response<CallReply>, Status> {
        let payload = request.into_inner().payload;
        Ok(Response::new(CallReply {
            payload,
            ..CallReply::default()
        }))
    }

    async fn renew(&self, _: Request<RenewRequest>) -> Result<Response<RenewReply>, Status> {
        Err(Status::unimplemented("the echo server lends no handles"))
    }

    async fn release(&self, _: Request<ReleaseRequest>) -> Result<Response<ReleaseReply>, Status> {
        Err(Status::unimplemented("the echo server lends no handles"))
    }

    type FlowStream = tokio_stream::Empty<Result<weft_proto::v1::FlowDown, Status>>;

    async fn flow(
        &self,
        _: Request<tonic::Streaming<weft_proto::v1::FlowUp>>,
    ) -> Result<Response<Self::FlowStream>, Status> {
        Err(Status::unimplemented("the echo server has no streams"))
    }
}

/// Runs the echo server and prints its address; exits when stdin closes.
pub(crate) fn echo_server() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?);
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let service = InvokeServer::new(Echo)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        });
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stdin_closed.await;
            })
            .await?;
        anyhow::Ok(())
    })?;
    std::process::exit(0);
}

/// A child process that is killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a process with a pipe as stdin, which it may watch to exit.
fn start(command: &mut Command) -> anyhow::Result<Process> {
    Ok(Process(command.stdin(Stdio::piped()).spawn()?))
}

/// Starts a process and returns it with the first line it printed.
fn start_and_read(mut command: Command) -> anyhow::Result<(Process, String)> {
    let mut process = start(command.stdout(Stdio::piped()))?;
    let mut lines = BufReader::new(process.0.stdout.take().expect("piped")).lines();
    let first = lines.next().transpose()?.unwrap_or_default();
    std::thread::spawn(move || lines.for_each(drop));
    Ok((process, first))
}

/// The `p`th percentile of sorted `samples`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One call of the baseline.
async fn tonic_call(
    client: &mut InvokeClient<tonic::transport::Channel>,
    template: &CallRequest,
) -> anyhow::Result<()> {
    let reply = client.call(template.clone()).await?;
    anyhow::ensure!(reply.get_ref().payload.len() == template.payload.len());
    Ok(())
}

/// One call through weft: the caller's `bytes-loop(1, size)`.
async fn weft_call(caller: &InstancePool, size: u32) -> anyhow::Result<()> {
    let driver = caller.instance_pre().component();
    let iface = driver
        .get_export_index(None, "demo:fixtures/driver@0.1.0")
        .expect("driver");
    let index = driver
        .get_export_index(Some(&iface), "bytes-loop")
        .expect("bytes-loop");
    let received = caller
        .with_instance(async |w| {
            let f = w
                .instance
                .get_typed_func::<(u32, u32), (u64,)>(&mut w.store, index)?;
            Ok(f.call_async(&mut w.store, (1, size)).await?.0)
        })
        .await?;
    anyhow::ensure!(received == u64::from(size));
    Ok(())
}

/// Times `calls` calls of one side, one at a time.
async fn time_each(
    calls: usize,
    samples: &mut Vec<Duration>,
    mut call: impl AsyncFnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for _ in 0..calls {
        let start = Instant::now();
        call().await?;
        samples.push(start.elapsed());
    }
    Ok(())
}

/// Calls per second with [`CONCURRENCY`] callers, each running `call` in a
/// loop for one turn.
async fn throughput<F>(call: F) -> anyhow::Result<f64>
where
    F: Fn() -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>
        + Send
        + Sync
        + 'static,
{
    let call = Arc::new(call);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let call = call.clone();
        tasks.spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < THROUGHPUT_TURN {
                call().await?;
                n += 1;
            }
            anyhow::Ok(n)
        });
    }
    let mut total = 0;
    while let Some(n) = tasks.join_next().await {
        total += n??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub(crate) async fn cross_process() -> anyhow::Result<()> {
    println!(
        "\n(d) one cross-process call through weft versus a hand-written tonic unary echo of the same payload"
    );
    let weft = target_dir().join("release/weft");
    let dir = super::bench_app()?;
    let cache = tempfile::tempdir()?;
    let manifest = ManifestFile::load(dir.path())?;
    let prepared = Prepared::load(manifest, &CompileCache::new(cache.path()))?;
    let plan = Plan::split(["caller", "callee"]);
    let version = prepared.version(&plan);

    // The callee's worker, assigned as a manager would assign it.
    let authority = Authority::generate(&prepared.manifest.manifest.app.name)?;
    let caller_identity = Identity::worker(authority.app(), version.as_str(), "caller");
    let dialer = Dialer::new(authority.issue(&caller_identity)?);
    let worker = AssignedWorker::start(
        &weft,
        &[],
        &authority,
        Assign {
            app: dir.path(),
            plan: &plan,
            version: &version,
            group: "callee",
            routes: &[],
            cache: cache.path(),
        },
    )
    .await?;
    let address = worker.address.clone();
    let placement = Placement {
        group: "caller".to_string(),
        local: BTreeSet::from(["caller".to_string()]),
        remote: BTreeMap::from([(
            "callee".to_string(),
            Arc::new(Replicas::new(
                weft_runtime::discovery::Peers::fixed(vec![address.clone()]),
                &dialer,
                &version,
            )),
        )]),
        version: version.clone(),
        fuse: false,
    };
    let split = App::start(&prepared, Some(&placement), &Default::default()).await?;
    let remote_caller = split.pools["caller"].clone();
    let monolith = App::start(&prepared, None, &Default::default()).await?;
    let local_caller = monolith.pools["caller"].clone();

    // The baseline's server and client.
    let mut command = Command::new(std::env::current_exe()?);
    command.env(super::ECHO_SERVER, "1");
    let (_echo, echo_address) = start_and_read(command)?;
    // The baseline is plain tonic: cleartext HTTP/2, no certificates.
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{echo_address}"))?
        .tcp_nodelay(true);
    let echo = InvokeClient::new(plain.connect_lazy())
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);

    // The worker itself, called by a plain tonic client: what weft's server
    // side costs, apart from the caller's guest and forwarder.
    let fingerprint = weft_tests::fingerprint(&prepared, "callee", "echo-bytes");
    let direct = InvokeClient::new(dialer.channel(&address, Peer::Worker(&version))?)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);

    // What a new connection costs: TCP and HTTP/2 to the baseline, and
    // TCP, the mutual-TLS handshake and HTTP/2 to the worker.
    let (mut cleartext, mut handshakes) = (Vec::new(), Vec::new());
    for _ in 0..TURNS {
        let started = Instant::now();
        drop(plain.connect().await?);
        cleartext.push(started.elapsed());
        let started = Instant::now();
        drop(
            dialer
                .endpoint(&address, Peer::Worker(&version))?
                .connect()
                .await?,
        );
        handshakes.push(started.elapsed());
    }
    cleartext.sort();
    handshakes.sort();
    let (c50, h50) = (percentile(&cleartext, 0.5), percentile(&handshakes, 0.5));
    println!(
        "    a new connection, once per peer: cleartext p50 {:7.1} µs   mutual TLS p50 {:7.1} µs   the handshake costs {:+.1} µs",
        us(c50),
        us(h50),
        us(h50) - us(c50)
    );

    let mut summary = Vec::new();
    for (label, size, target) in [("64 B", 64u32, 1.3), ("64 KiB", 64 << 10, 1.4)] {
        // What weft sends: the same header fields, and the list encoded by
        // weft's own codec.
        let bytes = Val::List(vec![Val::U8(7); size as usize]);
        let mut payload = Vec::new();
        codec::encode(
            &ValueType::List(Box::new(ValueType::U8)),
            &bytes,
            &mut payload,
        )?;
        let template = CallRequest {
            version: version.to_string(),
            caller: "caller".into(),
            target: "callee".into(),
            interface: "demo:fixtures/target@0.1.0".into(),
            function: "echo-bytes".into(),
            fingerprint: fingerprint.clone(),
            payload: payload.into(),
            ..CallRequest::default()
        };

        // Warm both paths (connections, instances).
        let (mut client, mut worker_client) = (echo.clone(), direct.clone());
        for _ in 0..200 {
            tonic_call(&mut client, &template).await?;
            tonic_call(&mut worker_client, &template).await?;
            weft_call(&remote_caller, size).await?;
            weft_call(&local_caller, size).await?;
        }
        let (mut base, mut subject, mut local, mut served) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..TURNS {
            time_each(CALLS, &mut base, async || {
                tonic_call(&mut client, &template).await
            })
            .await?;
            time_each(CALLS, &mut served, async || {
                tonic_call(&mut worker_client, &template).await
            })
            .await?;
            time_each(CALLS, &mut subject, async || {
                weft_call(&remote_caller, size).await
            })
            .await?;
            time_each(CALLS, &mut local, async || {
                weft_call(&local_caller, size).await
            })
            .await?;
        }
        for samples in [&mut base, &mut subject, &mut local, &mut served] {
            samples.sort();
        }
        let (b50, b99) = (percentile(&base, 0.5), percentile(&base, 0.99));
        let (w50, w99) = (percentile(&subject, 0.5), percentile(&subject, 0.99));
        let l50 = percentile(&local, 0.5);
        let s50 = percentile(&served, 0.5);
        println!(
            "    {label:7} tonic p50 {:7.1} µs p99 {:7.1} µs   weft p50 {:7.1} µs p99 {:7.1} µs   p50 {:.2}x (target <= {target}x)  p99 {:.2}x",
            us(b50),
            us(b99),
            us(w50),
            us(w99),
            w50.as_secs_f64() / b50.as_secs_f64(),
            w99.as_secs_f64() / b99.as_secs_f64()
        );
        println!(
            "    {label:7} where it goes: a tonic client calling the weft worker directly p50 {:7.1} µs ({:.2}x tonic), so the callee's side adds {:+.1} µs and the caller's guest and forwarder {:+.1} µs",
            us(s50),
            s50.as_secs_f64() / b50.as_secs_f64(),
            us(s50) - us(b50),
            us(w50) - us(s50)
        );

        let (mut base_rate, mut weft_rate) = (Vec::new(), Vec::new());
        for _ in 0..THROUGHPUT_TURNS {
            let (echo, template) = (echo.clone(), template.clone());
            base_rate.push(
                throughput(move || {
                    let (mut client, template) = (echo.clone(), template.clone());
                    Box::pin(async move { tonic_call(&mut client, &template).await })
                })
                .await?,
            );
            let caller = remote_caller.clone();
            weft_rate.push(
                throughput(move || {
                    let caller = caller.clone();
                    Box::pin(async move { weft_call(&caller, size).await })
                })
                .await?,
            );
        }
        let (br, wr) = (median(base_rate), median(weft_rate));
        println!(
            "    {label:7} {CONCURRENCY} concurrent callers: tonic {br:8.0} calls/s   weft {wr:8.0} calls/s   weft/tonic {:.2}x",
            wr / br
        );
        summary.push((label, w50, l50));
    }
    for (label, remote, local) in summary {
        println!(
            "    {label:7} cross-process p50 {:7.1} µs   in-process p50 {:7.2} µs   cross/in {:.0}x",
            us(remote),
            us(local),
            remote.as_secs_f64() / local.as_secs_f64()
        );
    }
    Ok(())
}
