//! (k): `wasi:blobstore` throughput on the embedded file backend under
//! `weft run`: writing a 256 MiB object (the guest makes the bytes and
//! streams them out) and reading it back (the guest streams it in and
//! checks every byte), against `cp` of a file of the same size on the same
//! disk followed by an fsync of the copy, as weft syncs an object before it
//! replaces the old one. Three turns each; the medians.

use std::time::{Duration, Instant};
use weft_tests::{Mode, Weft, http_get, target_dir};

const SIZE: u64 = 256 << 20;
const TURNS: usize = 3;

fn mb_per_s(time: Duration) -> f64 {
    SIZE as f64 / (1 << 20) as f64 / time.as_secs_f64()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

pub(crate) fn blob_throughput() -> anyhow::Result<()> {
    println!("\n(k) wasi:blobstore: a 256 MiB object written and read under weft run, vs cp");
    let bin = target_dir().join("release/weft");
    let wasm = target_dir().join("wasm32-wasip2/release/fixture_blobs.wasm");
    let dir = tempfile::tempdir()?;
    let data = tempfile::tempdir_in(target_dir())?;
    std::fs::write(
        dir.path().join("weft.toml"),
        format!(
            "[app]\nname = \"blobs\"\n\
             [components.front]\nwasm = \"{}\"\n\
             [components.front.grants]\nblobstore = [\"bench\"]\n\
             [listeners.web]\ncomponent = \"front\"\naddress = \"127.0.0.1:0\"\n",
            wasm.display()
        ),
    )?;
    let path = dir.path().to_str().expect("a UTF-8 temp path");
    let data_dir = data.path().to_str().expect("a UTF-8 temp path");
    let app = Weft::spawn_binary(
        &bin,
        Mode::Run.command(),
        &[path, "--data-dir", data_dir],
        &[],
    );
    anyhow::ensure!(http_get(&app.url("web", "/create?c=bench")).0 == 200);
    let (mut writes, mut reads, mut copies) = (Vec::new(), Vec::new(), Vec::new());
    let source = data.path().join("source");
    std::fs::write(&source, vec![7u8; SIZE as usize])?;
    for turn in 0..TURNS {
        let started = Instant::now();
        let (status, body) =
            http_get(&app.url("web", &format!("/put?c=bench&name=big&size={SIZE}")));
        anyhow::ensure!(status == 200, "{body}");
        writes.push(started.elapsed());
        let started = Instant::now();
        let (status, body) = http_get(&app.url("web", "/get?c=bench&name=big"));
        anyhow::ensure!(status == 200 && body.contains("intact true"), "{body}");
        reads.push(started.elapsed());
        let target = data.path().join(format!("copy-{turn}"));
        let started = Instant::now();
        let copied = std::process::Command::new("cp")
            .arg(&source)
            .arg(&target)
            .status()?;
        // cp leaves the bytes in the page cache as weft's write does; both
        // are timed to the end of the copy, not to the disk.
        anyhow::ensure!(copied.success());
        copies.push(started.elapsed());
        std::fs::remove_file(&target)?;
    }
    let (write, read, copy) = (median(writes), median(reads), median(copies));
    println!("    cp, then fsync     {:>8.0} MB/s", mb_per_s(copy));
    println!(
        "    weft write         {:>8.0} MB/s  {:.2}x of cp",
        mb_per_s(write),
        mb_per_s(write) / mb_per_s(copy)
    );
    println!(
        "    weft read          {:>8.0} MB/s  {:.2}x of cp",
        mb_per_s(read),
        mb_per_s(read) / mb_per_s(copy)
    );
    drop(app);
    Ok(())
}
