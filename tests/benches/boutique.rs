//! (h): the HotOS 2023 paper's Table 2 on this machine. `samples/boutique`
//! (release weft) under a bounded load: `CLIENTS` shoppers, each on its own
//! kept-alive connection with its own session, sending the next request as
//! soon as the last is answered, for `MEASURE`. Each goes round the mix
//! [`MIX`]: the home page, product pages, adding to the cart, the cart, and
//! a checkout (which empties the cart again).
//!
//! The same load runs against six placements, one after another in this
//! run: `weft run` (one process), `weft deploy --plan monolith` (every
//! component colocated in one worker), the three-group plan of
//! `three-groups.toml` (carts on a Redis the benchmark starts), `weft
//! deploy --plan split` (every component in its own worker), and the shop
//! with its concurrent frontend (`concurrent.toml`, WASI 0.3) under `weft
//! run` and split, whose pages are set beside the sequential frontend's. For each it
//! prints throughput, the median and p99 latency, and the CPU seconds per
//! 1000 requests summed over every weft process (manager and workers, read
//! from /proc), and Redis where the carts are on it. The load generator runs on the same two cores, so no
//! placement gets the machine to itself.
//!
//! The paper compares Weaver with every component colocated against gRPC
//! microservices on Kubernetes: a median latency of 0.38 ms against 5.47
//! ms (14x), and 9 against 78 cores at 10k QPS (9x). Split over colocated
//! is the same comparison here; CPU per request is what sets the cores
//! needed at a given QPS. A second pass with one client gives the median
//! latency of a request alone, without queueing behind other clients.

mod auto;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use weft_tests::{RedisServer, Shopper, Weft, boutique_app, checkout_form, target_dir};

/// Concurrent shoppers under load.
const CLIENTS: usize = 8;
/// How long each placement is loaded before measuring, and measured.
const WARM_UP: Duration = Duration::from_secs(3);
const MEASURE: Duration = Duration::from_secs(15);
/// How long one client alone is measured.
const ALONE: Duration = Duration::from_secs(6);

/// One request of the mix.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Home,
    Product(&'static str),
    Add(&'static str),
    Cart,
    Checkout,
}

/// One round of a shopper: 1 home page, 4 product pages, 2 adds, 2 cart
/// views and 1 checkout, close to the weights of Online Boutique's load
/// generator.
const MIX: &[Step] = &[
    Step::Home,
    Step::Product("OLJCESPC7Z"),
    Step::Product("66VCHSJNUP"),
    Step::Add("OLJCESPC7Z"),
    Step::Cart,
    Step::Product("1YMWWN1N4O"),
    Step::Product("6E92ZMYYFZ"),
    Step::Add("6E92ZMYYFZ"),
    Step::Cart,
    Step::Checkout,
];

impl Step {
    /// The kind of page, for the per-page table.
    fn page(self) -> &'static str {
        match self {
            Step::Home => "home",
            Step::Product(_) => "product",
            Step::Add(_) => "add to cart",
            Step::Cart => "cart",
            Step::Checkout => "checkout",
        }
    }
}

/// The pages of the per-page table, in the order of the mix.
const PAGES: &[&str] = &["home", "product", "add to cart", "cart", "checkout"];

/// What one placement did under one load.
pub(crate) struct Figures {
    requests: usize,
    pub(crate) failed: usize,
    pub(crate) elapsed: Duration,
    /// Every request's latency, sorted.
    pub(crate) latencies: Vec<Duration>,
    /// Every request's latency by page, sorted.
    pages: Vec<(&'static str, Vec<Duration>)>,
    /// CPU seconds of every weft process over the measurement.
    cpu: f64,
}

impl Figures {
    fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let last = self.latencies.len().saturating_sub(1);
        let i = (last as f64 * p).round() as usize;
        self.latencies.get(i).copied().unwrap_or_default()
    }

    /// Every latency of `page`, sorted.
    fn page_times(&self, page: &str) -> &[Duration] {
        let (_, times) = self
            .pages
            .iter()
            .find(|(p, _)| *p == page)
            .expect("a page of the mix");
        times
    }

    /// The median latency of `page`.
    fn page_median(&self, page: &str) -> Duration {
        let times = self.page_times(page);
        times.get(times.len() / 2).copied().unwrap_or_default()
    }

    /// The mean latency of `page`.
    fn page_mean(&self, page: &str) -> Duration {
        let times = self.page_times(page);
        let total: Duration = times.iter().sum();
        total / u32::try_from(times.len().max(1)).unwrap_or(u32::MAX)
    }

    fn cpu_per_1000(&self) -> f64 {
        self.cpu * 1000.0 / self.requests as f64
    }
}

/// Sends one step; whether the shop answered it as it should.
fn send(shopper: &mut Shopper, step: Step) -> bool {
    match step {
        Step::Home => shopper.get("/").status == 200,
        Step::Product(id) => shopper.get(&format!("/product/{id}")).status == 200,
        Step::Add(id) => {
            shopper
                .post("/cart", &[("product_id", id), ("quantity", "1")])
                .status
                == 303
        }
        Step::Cart => shopper.get("/cart").status == 200,
        Step::Checkout => {
            let reply = shopper.post("/cart/checkout", &checkout_form("4432-8015-6152-0454"));
            reply.status == 200 && reply.body.contains("Your order is complete!")
        }
    }
}

/// `clients` shoppers on `address` for `during`; the CPU time of the
/// processes `roots` and their descendants counts.
pub(crate) fn load(
    address: SocketAddr,
    clients: usize,
    during: Duration,
    roots: &[u32],
) -> Figures {
    load_mix(address, MIX, clients, during, roots)
}

/// Like [`load`], each shopper going round `mix` instead of [`MIX`].
fn load_mix(
    address: SocketAddr,
    mix: &'static [Step],
    clients: usize,
    during: Duration,
    roots: &[u32],
) -> Figures {
    let cpu = || roots.iter().map(|pid| cpu_seconds(*pid)).sum::<f64>();
    let cpu_before = cpu();
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let mut shopper = Shopper::open(address);
                let (mut latencies, mut failed) = (Vec::new(), 0);
                let mut pages: Vec<(&'static str, Vec<Duration>)> =
                    PAGES.iter().map(|p| (*p, Vec::new())).collect();
                // A new session has an empty cart: every client starts the
                // mix from its beginning, so that a checkout follows adds.
                let mut next = 0;
                while started.elapsed() < during {
                    let step = mix[next % mix.len()];
                    next += 1;
                    let sent = Instant::now();
                    if !send(&mut shopper, step) {
                        failed += 1;
                    }
                    let took = sent.elapsed();
                    latencies.push(took);
                    if let Some((_, times)) = pages.iter_mut().find(|(p, _)| *p == step.page()) {
                        times.push(took);
                    }
                }
                (latencies, failed, pages)
            })
        })
        .collect();
    let mut figures = Figures {
        requests: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        pages: PAGES.iter().map(|p| (*p, Vec::new())).collect(),
        cpu: 0.0,
    };
    for thread in threads {
        let (latencies, failed, pages) = thread.join().expect("a client thread");
        figures.requests += latencies.len();
        figures.failed += failed;
        figures.latencies.extend(latencies);
        for ((_, all), (_, times)) in figures.pages.iter_mut().zip(pages) {
            all.extend(times);
        }
    }
    for (_, times) in &mut figures.pages {
        times.sort();
    }
    figures.elapsed = started.elapsed();
    figures.cpu = cpu() - cpu_before;
    figures.latencies.sort();
    figures
}

/// User and system CPU seconds of process `root` and all its descendants,
/// from /proc.
fn cpu_seconds(root: u32) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((ppid, cpu)) = stat(pid) {
            parents.push((pid, ppid, cpu));
        }
    }
    let mut tree = vec![root];
    let mut total = 0;
    let mut i = 0;
    while i < tree.len() {
        let pid = tree[i];
        for &(child, ppid, cpu) in &parents {
            if child == pid {
                total += cpu;
            }
            if ppid == pid && !tree.contains(&child) {
                tree.push(child);
            }
        }
        i += 1;
    }
    total as f64 / ticks
}

/// The parent and the user plus system ticks of `pid`, from /proc/PID/stat.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces; the fields after its ')' are fixed.
    let fields: Vec<&str> = text[text.rfind(')')? + 2..].split(' ').collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// One placement: its name, and how weft starts it.
struct Placement {
    name: &'static str,
    command: &'static [&'static str],
    manifest: &'static str,
}

const PLACEMENTS: &[Placement] = &[
    Placement {
        name: "weft run (one process)",
        command: &["run"],
        manifest: "weft.toml",
    },
    Placement {
        name: "colocated (deploy monolith)",
        command: &["deploy", "--plan", "monolith"],
        manifest: "weft.toml",
    },
    Placement {
        name: "three groups (Redis carts)",
        command: &["deploy"],
        manifest: "three-groups.toml",
    },
    Placement {
        name: "split (10 workers)",
        command: &["deploy", "--plan", "split"],
        manifest: "weft.toml",
    },
    Placement {
        name: "concurrent frontend, weft run",
        command: &["run"],
        manifest: "concurrent.toml",
    },
    Placement {
        name: "concurrent frontend, split",
        command: &["deploy", "--plan", "split"],
        manifest: "concurrent.toml",
    },
];

/// The row of the plan `weft plan` chose.
const AUTO_ROW: &str = "auto plan (payment apart)";

pub(crate) fn table2() -> anyhow::Result<()> {
    println!(
        "\n(h) samples/boutique under load: {CLIENTS} shoppers for {}s per placement \
         (after {}s of warm-up), then 1 shopper alone for {}s",
        MEASURE.as_secs(),
        WARM_UP.as_secs(),
        ALONE.as_secs()
    );
    let bin = target_dir().join("release/weft");
    let redis = RedisServer::start();
    let mut rows = Vec::new();
    for placement in PLACEMENTS {
        let url = redis.url(0);
        let dir = boutique_app(placement.manifest, Some(&url));
        let app = start(&bin, placement, dir.path());
        // Redis's CPU counts where the carts are on it.
        let mut roots = vec![app.pid()];
        if placement.manifest == "three-groups.toml" {
            roots.extend(redis.pid());
        }
        let (loaded, alone) = measure(placement.name, app, &roots)?;
        rows.push((placement.name, loaded, alone));
    }

    // The plan weft chooses under a constraint, moved to live from split.
    let (_, _, split_alone) = rows
        .iter()
        .find(|(n, _, _)| n.starts_with("split"))
        .expect("the split row");
    let auto = auto::run(&bin, split_alone)?;
    rows.push((AUTO_ROW, auto.loaded, auto.alone));

    println!(
        "  {:<29} {:>9} {:>9} {:>9} {:>13} {:>12}",
        "placement", "req/s", "p50", "p99", "CPU s/1000", "p50 alone"
    );
    for (name, loaded, alone) in &rows {
        println!(
            "  {:<29} {:>9.0} {:>9} {:>9} {:>13.3} {:>12}",
            name,
            loaded.throughput(),
            ms(loaded.percentile(0.5)),
            ms(loaded.percentile(0.99)),
            loaded.cpu_per_1000(),
            ms(alone.percentile(0.5)),
        );
    }
    println!("  median latency per page, 1 shopper alone:");
    println!(
        "  {:<29} {}",
        "placement",
        PAGES.iter().map(|p| format!("{p:>12}")).collect::<String>()
    );
    for (name, _, alone) in &rows {
        let medians: String = PAGES
            .iter()
            .map(|p| format!("{:>12}", ms(alone.page_median(p))))
            .collect();
        println!("  {name:<29} {medians}");
    }
    let find = |prefix: &str| {
        rows.iter()
            .find(|(n, _, _)| n.starts_with(prefix))
            .expect("a row")
    };
    let (_, split, split_alone) = find("split");
    let colocated = [find("colocated"), find("weft run")];
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let line = |what: &str, of: &dyn Fn(&Figures, &Figures) -> f64, paper: &str| {
        let [(_, monolith, monolith_alone), (_, run, run_alone)] = colocated;
        println!(
            "    {what:<27} {:>17.1}x {:>12.1}x   {paper}",
            of(
                pick(split, split_alone, what),
                pick(monolith, monolith_alone, what)
            ),
            of(pick(split, split_alone, what), pick(run, run_alone, what)),
        );
    };
    println!(
        "  split / colocated            vs deploy monolith   vs weft run   the paper (microservices / Weaver)"
    );
    line(
        "median latency, alone",
        &|s, c| ratio(s.percentile(0.5), c.percentile(0.5)),
        "5.47 ms / 0.38 ms = 14x (goal: >= 10x)",
    );
    line(
        &format!("median latency, {CLIENTS} clients"),
        &|s, c| ratio(s.percentile(0.5), c.percentile(0.5)),
        "",
    );
    line(
        "CPU per request",
        &|s, c| s.cpu_per_1000() / c.cpu_per_1000(),
        "78 / 9 cores at 10k QPS = 9x",
    );
    line("throughput", &|s, c| s.throughput() / c.throughput(), "");

    // The concurrent frontend (WASI 0.3) makes a page's calls at once.
    let (_, _, concurrent_split) = find("concurrent frontend, split");
    let (_, _, concurrent_run) = find("concurrent frontend, weft run");
    let (_, _, run_alone) = find("weft run");
    println!("  the concurrent frontend, 1 shopper alone, median per page:");
    println!(
        "  {:<13} {:>16} {:>16} {:>10}   {:>16} {:>10}",
        "page", "sequential split", "concurrent split", "faster", "weft run (seq.)", "split/run"
    );
    for page in PAGES {
        let (sequential, concurrent) = (
            split_alone.page_median(page),
            concurrent_split.page_median(page),
        );
        let target = if *page == "home" {
            " (target >= 2x)"
        } else {
            ""
        };
        println!(
            "  {page:<13} {:>16} {:>16} {:>9.1}x   {:>16} {:>9.1}x{target}",
            ms(sequential),
            ms(concurrent),
            ratio(sequential, concurrent),
            ms(run_alone.page_median(page)),
            ratio(concurrent, run_alone.page_median(page)),
        );
    }
    println!(
        "  home page, concurrent frontend under weft run: {} (sequential: {})",
        ms(concurrent_run.page_median("home")),
        ms(run_alone.page_median("home"))
    );

    // The automatic plan, against the hand-written plans that honour its
    // constraint (three groups and split; the others colocate payment
    // with the frontend).
    let (_, _, auto_alone) = find(AUTO_ROW);
    let choice = &auto.choice;
    println!(
        "  the automatic plan under{}  from a profile of the split shop under the mix, in which \
         a call between processes cost {}",
        auto::CONSTRAINT.replace('\n', " "),
        auto::costs_line(&choice.costs)
    );
    for (name, group) in &choice.plan.groups {
        println!("    group {name:<12} {}", group.components.join(", "));
    }
    let cut: Vec<String> = choice
        .cut_pairs()
        .iter()
        .map(|(a, b)| format!("{a} -> {b}"))
        .collect();
    println!("    cut edges: {}", cut.join(", "));
    let honouring = [find("three groups"), find("split")];
    for (what, alone) in [("alone", true), ("under load", false)] {
        let of = |row: &(&str, Figures, Figures)| {
            if alone {
                row.2.percentile(0.5)
            } else {
                row.1.percentile(0.5)
            }
        };
        let (best_name, best) = honouring
            .iter()
            .map(|row| (row.0, of(row)))
            .min_by_key(|(_, d)| *d)
            .expect("two rows");
        let mine = of(find(AUTO_ROW));
        println!(
            "    median latency {what:<10} auto {}  best honouring hand-written ({best_name}) {}  \
             ratio {:.2}x (target <= 1.2x)  split / auto {:.1}x (target >= 3x)",
            ms(mine),
            ms(best),
            ratio(mine, best),
            ratio(of(find("split")), mine),
        );
    }
    let (_, _, monolith_alone) = find("colocated");
    println!(
        "    mean latency per page, 1 shopper alone: predicted from the split shop's page \
         profiles (a call between processes cost {} with one shopper), and measured",
        auto::costs_line(&auto.alone_costs)
    );
    println!(
        "    {:<13} {:>14} {:>14} {:>14} {:>18} {:>18}",
        "page",
        "split measured",
        "auto predicted",
        "auto measured",
        "monolith predicted",
        "monolith measured"
    );
    for (page, predicted) in &auto.predicted {
        println!(
            "    {page:<13} {:>14} {:>14} {:>14} {:>18} {:>18}",
            ms(split_alone.page_mean(page)),
            format!("{:.2}ms", predicted.chosen),
            ms(auto_alone.page_mean(page)),
            format!("{:.2}ms", predicted.monolith),
            ms(monolith_alone.page_mean(page)),
        );
    }
    Ok(())
}

/// Loads the shop that `app` serves after a warm-up, then one shopper
/// alone, and stops it; none of the requests may fail.
fn measure(name: &str, app: Weft, roots: &[u32]) -> anyhow::Result<(Figures, Figures)> {
    let address = app.listeners["web"];
    load(address, CLIENTS, WARM_UP, roots);
    let loaded = load(address, CLIENTS, MEASURE, roots);
    let alone = load(address, 1, ALONE, roots);
    let (status, output) = app.stop();
    anyhow::ensure!(status.success(), "{name} did not stop cleanly: {output}");
    anyhow::ensure!(
        loaded.failed == 0 && alone.failed == 0,
        "{name}: {} of {} requests failed",
        loaded.failed + alone.failed,
        loaded.requests + alone.requests
    );
    Ok((loaded, alone))
}

/// The figures of the one-shopper pass for the "alone" line, else those
/// under load.
fn pick<'a>(loaded: &'a Figures, alone: &'a Figures, what: &str) -> &'a Figures {
    if what.ends_with("alone") {
        alone
    } else {
        loaded
    }
}

fn start(bin: &Path, placement: &Placement, dir: &Path) -> Weft {
    let path = dir.to_str().expect("a UTF-8 temp path");
    Weft::spawn_binary(bin, placement.command, &[path], &[])
}

fn ms(d: Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1000.0)
}
