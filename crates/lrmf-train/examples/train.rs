//! A minimal driver of the trainer without the CLI, for measuring configs:
//! `cargo run --release -p lrmf-train --example train -- CONFIG OUT_DIR [--resume]`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use lrmf_train::{Progress, RunInfo, StepMetrics, TrainConfig, train};

/// Prints a line every `every` steps and after each epoch's evaluation.
struct Print {
    every: usize,
    clock: Instant,
}

impl Progress for Print {
    fn start(&mut self, info: &RunInfo) {
        println!(
            "steps {} ({} per epoch), d = {}, eps = {:?}, z = {:?}",
            info.total_steps,
            info.steps_per_epoch,
            info.num_params,
            info.epsilon,
            info.noise_multiplier
        );
        for w in &info.warnings {
            println!("warning: {w}");
        }
    }
    fn step(&mut self, m: &StepMetrics) {
        if m.step.is_multiple_of(self.every) {
            println!(
                "[{:7.1}s] step {} epoch {} lr {:.4} loss {:?} acc {:?} clipped {:?}",
                self.clock.elapsed().as_secs_f64(),
                m.step,
                m.epoch,
                m.lr,
                m.loss,
                m.accuracy,
                m.clipped_fraction
            );
        }
    }
    fn epoch(&mut self, epoch: usize, loss: f64, acc: f64) {
        println!(
            "[{:7.1}s] epoch {epoch}: test loss {loss:.4} accuracy {acc:.4}",
            self.clock.elapsed().as_secs_f64()
        );
    }
    fn message(&mut self, text: &str) {
        println!("{text}");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err("usage: train CONFIG OUT_DIR [--resume]".into());
    }
    let config = TrainConfig::from_toml_file(&PathBuf::from(&args[0]))?;
    let resume = args.iter().any(|a| a == "--resume");
    let every = std::env::var("EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut p = Print {
        every,
        clock: Instant::now(),
    };
    let summary = train(
        &config,
        &PathBuf::from(&args[1]),
        resume,
        Arc::new(AtomicBool::new(false)),
        &mut p,
    )?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
