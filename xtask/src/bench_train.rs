//! `cargo xtask bench-train`: lrmf's training-step timings side by side with PyTorch and
//! Opacus in one run, so a speed claim is always a ratio measured on the same machine at the
//! same moment.
//!
//! lrmf's steps run in this process (the CIFAR-10 CNN with and without group norm, the IMDB
//! text model; non-private and private with per-example clipping); with `--python PATH` (a
//! Python with torch and opacus) `scripts/opacus_bench.py --json` runs the same models and the
//! table gains PyTorch / Opacus columns and ratios. Next to each time: the CPU time per step
//! (user + system of the process; robust when other work shares the machine) and the process's
//! peak resident memory during the private steps (the high-water mark is reset before each
//! measurement through `/proc/self/clear_refs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use lrmf_train::model::{Batch, Cnn, CnnConfig, DpModel, TextClassifier, TextConfig};

/// Flags of `cargo xtask bench-train`.
#[derive(clap::Args)]
pub struct Args {
    /// Timed steps per configuration (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Batch size of the timed steps.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// A Python with torch and opacus: also time PyTorch and Opacus (scripts/opacus_bench.py).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Also measure the private CNN step's peak memory at this larger batch (0 = skip).
    #[arg(long, default_value_t = 1024)]
    memory_batch: usize,
    /// Write the table (markdown) to this file as well.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One measured configuration.
#[derive(Debug, Clone, Copy, Default)]
struct Timing {
    /// Wall-clock seconds per step.
    wall: f64,
    /// CPU seconds (user + system, all threads) per step.
    cpu: f64,
    /// Peak resident memory of the process during the steps, MiB.
    peak_mib: f64,
}

/// The three models of the comparison, named as `opacus_bench.py` names them.
const MODELS: [&str; 3] = ["cnn", "cnn_gn", "text"];

/// Runs the benchmark and prints the table.
pub fn run(args: Args) -> Result<()> {
    if args.steps == 0 || args.batch == 0 {
        bail!("--steps and --batch must be ≥ 1");
    }
    // lrmf's kernels use candle's thread count: $RAYON_NUM_THREADS, else every core; torch is
    // given the same number.
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&t: &usize| t > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    let load = load_average();
    println!(
        "bench-train: batch {}, {} timed steps, {threads} threads, load average {load:.2}{}",
        args.batch,
        args.steps,
        if load > 0.5 * threads as f64 {
            " (the machine is busy: wall times are inflated; CPU times are more robust)"
        } else {
            ""
        }
    );
    let mut lrmf = BTreeMap::new();
    for name in MODELS {
        let model = build(name)?;
        let batch = batch_for(name, args.batch);
        for private in [false, true] {
            let t = measure(model.as_ref(), &batch, private.then_some(1.0), args.steps)?;
            println!(
                "  lrmf {name:7} {:11} {:.3} s/step (CPU {:.3} s), peak {:.0} MiB",
                if private { "private" } else { "non-private" },
                t.wall,
                t.cpu,
                t.peak_mib
            );
            lrmf.insert((name, private), t);
        }
    }
    let memory = if args.memory_batch > 0 {
        let model = build("cnn")?;
        let batch = batch_for("cnn", args.memory_batch);
        let t = measure(model.as_ref(), &batch, Some(1.0), 1)?;
        println!(
            "  lrmf cnn private at batch {}: {:.3} s/step, peak {:.0} MiB",
            args.memory_batch, t.wall, t.peak_mib
        );
        Some(t)
    } else {
        None
    };
    let torch = match &args.python {
        Some(python) => Some(run_python(python, &args, threads)?),
        None => {
            println!(
                "  (no --python: for the PyTorch / Opacus columns, install torch and opacus in a \
                 virtual environment — python3 -m venv ~/.venvs/torch && ~/.venvs/torch/bin/pip \
                 install torch opacus — and pass --python ~/.venvs/torch/bin/python)"
            );
            None
        }
    };
    let table = render(&args, threads, load, &lrmf, memory, torch.as_ref());
    println!("\n{table}");
    if let Some(out) = &args.out {
        std::fs::write(out, &table).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

/// The model under test, with the shipped configurations' shapes.
fn build(name: &str) -> Result<Box<dyn DpModel>> {
    Ok(match name {
        "cnn" => Box::new(Cnn::new(CnnConfig::cifar10(false), 1)?),
        "cnn_gn" => Box::new(Cnn::new(CnnConfig::cifar10(true), 1)?),
        _ => Box::new(TextClassifier::new(
            TextConfig {
                vocab: 10_000,
                embed_dim: 64,
                classes: 2,
            },
            1,
        )?),
    })
}

/// A deterministic batch: CIFAR-shaped pixels in [−1, 1], or IMDB-shaped token rows of length
/// 256 with 64–256 real tokens (the rest padding), as `opacus_bench.py` draws them.
fn batch_for(name: &str, n: usize) -> Batch {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let labels_of = |next: &mut dyn FnMut() -> u64, classes: u64| {
        (0..n).map(|_| (next() % classes) as u32).collect()
    };
    if name == "text" {
        let len = 256;
        let mut tokens = vec![0u32; n * len];
        for row in tokens.chunks_mut(len) {
            let used = 64 + (next() % 193) as usize;
            for t in &mut row[..used] {
                *t = 1 + (next() % 9_999) as u32;
            }
        }
        let labels = labels_of(&mut next, 2);
        return Batch::Tokens {
            tokens,
            len,
            labels,
        };
    }
    let pixels = (0..n * 3 * 32 * 32)
        .map(|_| (next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect();
    let labels = labels_of(&mut next, 10);
    Batch::Images {
        pixels,
        shape: (3, 32, 32),
        labels,
    }
}

/// Times `steps` gradient computations after one warm-up step.
fn measure(model: &dyn DpModel, batch: &Batch, clip: Option<f32>, steps: usize) -> Result<Timing> {
    model.clipped_gradient_sum(batch, clip)?;
    reset_peak_rss();
    let cpu0 = process_cpu_seconds()?;
    let start = Instant::now();
    for _ in 0..steps {
        std::hint::black_box(model.clipped_gradient_sum(batch, clip)?);
    }
    let wall = start.elapsed().as_secs_f64() / steps as f64;
    let cpu = (process_cpu_seconds()? - cpu0) / steps as f64;
    Ok(Timing {
        wall,
        cpu,
        peak_mib: peak_rss_mib()?,
    })
}

/// User + system CPU seconds of this process (all threads), from `/proc/self/stat` (fields 14
/// and 15, in clock ticks of 1/100 s, the Linux value of `sysconf(_SC_CLK_TCK)` on x86-64).
fn process_cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/self/stat format")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3, utime field 14, stime field 15 (1-based).
    let tick = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i - 3)
            .context("short /proc/self/stat")?
            .parse::<f64>()?
            / 100.0)
    };
    Ok(tick(14)? + tick(15)?)
}

/// Resets the peak-RSS high-water mark (Linux `clear_refs` value 5); harmless where unsupported.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident memory (VmHWM) in MiB.
fn peak_rss_mib() -> Result<f64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM in /proc/self/status")?;
    let kib: f64 = line
        .split_whitespace()
        .nth(1)
        .context("bad VmHWM line")?
        .parse()?;
    Ok(kib / 1024.0)
}

/// The 1-minute load average (0 when unreadable).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// PyTorch / Opacus times per (model, variant) with variant ∈ {torch, hooks, ghost}.
type TorchTimes = BTreeMap<(String, String), Timing>;

/// Runs `scripts/opacus_bench.py --json` and parses its lines.
fn run_python(python: &PathBuf, args: &Args, threads: usize) -> Result<TorchTimes> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/opacus_bench.py");
    println!(
        "  running {} {} (PyTorch and Opacus) …",
        python.display(),
        script.display()
    );
    let out = Command::new(python)
        .arg(&script)
        .args(["--threads", &threads.to_string()])
        .args(["--steps", &args.steps.to_string()])
        .args(["--batch", &args.batch.to_string()])
        .arg("--json")
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_python(&String::from_utf8_lossy(&out.stdout))
}

/// Parses the JSON lines `{"model", "variant", "wall_s", "cpu_s"}` of `opacus_bench.py --json`
/// (other lines are ignored; a variant that failed carries `"error"` and is left out).
fn parse_python(stdout: &str) -> Result<TorchTimes> {
    let mut times = TorchTimes::new();
    for line in stdout.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if v.get("error").is_some() {
            println!("  note: {line}");
            continue;
        }
        let s = |k: &str| v[k].as_str().map(str::to_string);
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let (Some(model), Some(variant)) = (s("model"), s("variant")) else {
            continue;
        };
        let t = Timing {
            wall: f("wall_s"),
            cpu: f("cpu_s"),
            peak_mib: f64::NAN,
        };
        println!(
            "  {model:7} {variant:6} {:.3} s/step (CPU {:.3} s)",
            t.wall, t.cpu
        );
        times.insert((model, variant), t);
    }
    Ok(times)
}

/// The markdown table of times and ratios.
fn render(
    args: &Args,
    threads: usize,
    load: f64,
    lrmf: &BTreeMap<(&str, bool), Timing>,
    memory: Option<Timing>,
    torch: Option<&TorchTimes>,
) -> String {
    let mut s = format!(
        "Seconds per step, batch {}, {threads} threads, mean of {} steps (CPU seconds of the \
         process in parentheses); load average at start {load:.2}.\n\n",
        args.batch, args.steps
    );
    s.push_str(
        "| model | lrmf non-private | lrmf private | private / non-private | PyTorch | Opacus hooks \
         | Opacus ghost | lrmf / PyTorch | lrmf / hooks | lrmf / ghost | lrmf private peak RSS |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let cell = |t: Option<Timing>| match t {
        Some(t) if t.wall.is_finite() => format!("{:.3} ({:.3})", t.wall, t.cpu),
        _ => "—".into(),
    };
    let ratio = |a: f64, b: Option<Timing>| match b {
        Some(b) if b.wall.is_finite() && b.wall > 0.0 => format!("{:.2}", a / b.wall),
        _ => "—".into(),
    };
    for name in MODELS {
        let (np, p) = (lrmf[&(name, false)], lrmf[&(name, true)]);
        let get = |v: &str| torch.and_then(|t| t.get(&(name.to_string(), v.to_string())).copied());
        s.push_str(&format!(
            "| {name} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {:.0} MiB |\n",
            cell(Some(np)),
            cell(Some(p)),
            p.wall / np.wall,
            cell(get("torch")),
            cell(get("hooks")),
            cell(get("ghost")),
            ratio(np.wall, get("torch")),
            ratio(p.wall, get("hooks")),
            ratio(p.wall, get("ghost")),
            p.peak_mib
        ));
    }
    if let Some(m) = memory {
        s.push_str(&format!(
            "\nPrivate CNN step at batch {}: {:.3} s, peak resident memory {:.0} MiB.\n",
            args.memory_batch, m.wall, m.peak_mib
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(stdout: &str, want: &[(&str, &str, f64)]) {
        let got = parse_python(stdout).unwrap();
        assert_eq!(got.len(), want.len());
        for (m, v, wall) in want {
            assert_eq!(got[&(m.to_string(), v.to_string())].wall, *wall);
        }
    }

    #[test]
    fn python_lines_parse_and_errors_are_left_out() {
        check(
            "warming up\n\
             {\"model\": \"cnn\", \"variant\": \"torch\", \"wall_s\": 0.5, \"cpu_s\": 0.9}\n\
             {\"model\": \"text\", \"variant\": \"ghost\", \"error\": \"unsupported\"}\n\
             {\"model\": \"cnn\", \"variant\": \"ghost\", \"wall_s\": 1.25, \"cpu_s\": 2.4}\n",
            &[("cnn", "torch", 0.5), ("cnn", "ghost", 1.25)],
        );
    }

    #[test]
    fn batches_have_the_model_shapes() {
        let Batch::Tokens {
            tokens,
            len,
            labels,
        } = batch_for("text", 3)
        else {
            panic!("text batch expected");
        };
        assert_eq!((tokens.len(), len, labels.len()), (768, 256, 3));
        assert!(tokens.iter().all(|&t| t < 10_000));
        assert!(tokens.chunks(256).all(|r| r[..64].iter().all(|&t| t > 0)));
        let Batch::Images { pixels, labels, .. } = batch_for("cnn", 2) else {
            panic!("image batch expected");
        };
        assert_eq!((pixels.len(), labels.len()), (6144, 2));
        assert!(process_cpu_seconds().unwrap() >= 0.0 && peak_rss_mib().unwrap() > 0.0);
    }
}
