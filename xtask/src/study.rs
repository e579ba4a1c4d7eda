//! The full accuracy study of `cargo xtask repro --full` (issue 13): every training run of it —
//! the per-method learning-rate grid on a validation split, then the final runs — with its
//! config, its expected cost and its place in the order. The order puts the most informative
//! runs first (IMDB seed 0 under the Gaussian accountant, then CIFAR-10 seed 0, then more seeds,
//! then the constant-schedule baselines, then balls-in-bins accounting), so a study stopped
//! early still answers the main questions (does lr-awareness help, does the schedule help);
//! each grid run comes just before the first final run that needs its learning rate.

use crate::table::f;
use crate::train_config::RunSpec;
use anyhow::Result;
use lrmf_factor::Method;
use lrmf_train::TrainConfig;
use lrmf_train::config::AccountantKind;
use lrmf_train::model::Precision;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The decaying schedules every method runs with: (name, β = final / initial rate).
pub const SCHEDULES: [(&str, f64); 2] = [("exponential", 0.1), ("cosine", 0.1)];
/// The constant-rate baseline (for "does the schedule help"): only the methods that do not
/// depend on the schedule ([`is_baseline`]); an lr- method under a constant rate is its plain
/// form.
pub const CONSTANT: (&str, f64) = ("constant", 1.0);

/// The data sets of the study.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Data {
    /// IMDB reviews, the text model.
    Imdb,
    /// CIFAR-10, the CNN.
    Cifar10,
}

impl Data {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Data::Imdb => "imdb",
            Data::Cifar10 => "cifar10",
        }
    }

    /// Size of the whole training split.
    pub fn full_train(self) -> usize {
        match self {
            Data::Imdb => 25_000,
            Data::Cifar10 => 50_000,
        }
    }

    /// The accuracy the issue asks of the best private method.
    pub fn target(self) -> f64 {
        match self {
            Data::Imdb => 0.83,
            Data::Cifar10 => 0.64,
        }
    }
}

/// The private methods of the study: those whose noise state stays bounded as the run grows
/// (identity, the banded families, BLT), from [`Method::ALL`] so a new method of these kinds
/// joins by itself. Left out: sqrt / lr-sqrt and the dense methods, whose noise generator keeps
/// n rows of d values (gigabytes for the CNN) or which are O(n³).
pub fn study_methods() -> Vec<Method> {
    Method::ALL
        .into_iter()
        .filter(|m| {
            !m.is_dense() && (m.is_banded() || matches!(m.plain(), Method::Identity | Method::Blt))
        })
        .collect()
}

/// Whether a method (None = non-private) also runs with the constant-rate baseline: the
/// non-private model and the schedule-blind closed forms (DP-SGD, BSR, BISR).
pub fn is_baseline(m: Option<Method>) -> bool {
    m.is_none_or(|m| !m.is_lr_aware() && !m.is_optimized())
}

/// The scale of one data set's runs; stored in the run folder (`accuracy_study.json`) so a
/// resumed study keeps its plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSettings {
    /// Which data set.
    pub data: Data,
    /// Epochs of the final runs.
    pub epochs: usize,
    /// Epochs of the learning-rate grid runs.
    pub grid_epochs: usize,
    /// Seeds of the final runs (the study's seed, +1, …).
    pub seeds: usize,
    /// Expected batch size.
    pub batch: usize,
    /// Band p of the banded methods.
    pub band: usize,
    /// Centre of the private learning-rate grid (the DP-SGD rate of the quick mode).
    pub lr: f64,
    /// Centre of the non-private learning-rate grid.
    pub lr_nonprivate: f64,
    /// Training examples held out as the validation split of the grid runs.
    pub validation: usize,
    /// A grid per schedule (true) or one grid on the first schedule, reused for the others.
    pub grid_per_schedule: bool,
    /// Cost model: seconds of one epoch over the whole training split, evaluation included,
    /// with today's trainer on this 2-core machine.
    pub seconds_per_epoch: f64,
    /// Cost model: fixed seconds per run (loading, factorization).
    pub seconds_per_run: f64,
    /// Cost model: extra seconds of the Monte Carlo balls-in-bins calibration.
    pub seconds_mc_bnb: f64,
    /// Input precision of the CNN's convolution products (absent in the settings of studies
    /// begun before it existed: f32).
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub matmul: Precision,
    /// Training examples: a prefix of the training split (`None`: all). For smoke runs only
    /// (edit `accuracy_study.json` of a run folder and resume it); the study uses all.
    #[serde(default)]
    pub train_examples: Option<usize>,
    /// Test examples: a prefix of the test split (`None`: all); for smoke runs only.
    #[serde(default)]
    pub test_examples: Option<usize>,
}

/// The whole study's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// First seed of the final runs (and the seed of the grid runs).
    pub seed: u64,
    /// Grid learning rates, as multiples of the grid centre.
    pub grid_factors: Vec<f64>,
    /// Seed of the validation split (the same held-out examples for every grid run).
    pub validation_seed: u64,
    /// Per data set, IMDB first.
    pub data: Vec<DataSettings>,
}

impl Settings {
    /// The defaults. IMDB: 20 epochs (measured: bisr 83.5 % at ε = 9 after 20 epochs, 81.2 %
    /// after 10; 35 s per 10-epoch run on 2 cores), 3 seeds, a grid per schedule. CIFAR-10: 10
    /// epochs (58.0 % after 3 epochs with lr-bisr; the 64 % target needs more; 68.0 % after 10),
    /// 2 seeds, one 3-epoch grid on the exponential schedule, convolutions with bf16 inputs
    /// (each CIFAR-10 epoch cost about 90 s on AMX tiles against 145 s in f32 on one machine;
    /// about 85 s on another without AMX, where bf16 runs on the f32 kernels).
    pub fn defaults(seed: u64) -> Self {
        Settings {
            seed,
            // 0.25× joined after the first IMDB grids (20 epochs) all chose 0.5×, the grid's
            // lower edge: a longer run wants a smaller rate than the quick mode's.
            grid_factors: vec![0.25, 0.5, 1.0, 2.0],
            validation_seed: 0,
            data: vec![
                DataSettings {
                    data: Data::Imdb,
                    epochs: 20,
                    grid_epochs: 20,
                    seeds: 3,
                    batch: 1000,
                    band: 5,
                    lr: 20.0,
                    lr_nonprivate: 5.0,
                    validation: 5000,
                    grid_per_schedule: true,
                    seconds_per_epoch: 3.5,
                    seconds_per_run: 5.0,
                    seconds_mc_bnb: 60.0,
                    matmul: Precision::F32,
                    train_examples: None,
                    test_examples: None,
                },
                DataSettings {
                    data: Data::Cifar10,
                    epochs: 10,
                    grid_epochs: 3,
                    seeds: 2,
                    batch: 1000,
                    band: 4,
                    lr: 0.5,
                    lr_nonprivate: 0.007,
                    validation: 5000,
                    grid_per_schedule: false,
                    // A private epoch with group norm, evaluation included, bf16 convolutions:
                    // 89.7 s measured (`configs/cifar10-bisr-lr.toml` with `matmul = "bf16"`,
                    // 1 epoch, idle machine; 145.3 s in f32 right after).
                    seconds_per_epoch: 95.0,
                    seconds_per_run: 30.0,
                    seconds_mc_bnb: 150.0,
                    // bf16 inputs, f32 sums: on AMX 1.6× faster; elsewhere the same arithmetic at f32 speed.
                    matmul: Precision::Bf16,
                    train_examples: None,
                    test_examples: None,
                },
            ],
        }
    }

    /// The settings of one data set.
    pub fn of(&self, d: Data) -> &DataSettings {
        self.data
            .iter()
            .find(|x| x.data == d)
            .expect("settings cover every data set")
    }

    /// Mutable settings of one data set.
    pub fn of_mut(&mut self, d: Data) -> &mut DataSettings {
        self.data
            .iter_mut()
            .find(|x| x.data == d)
            .expect("settings cover every data set")
    }
}

/// Grid run or final run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// A learning-rate grid run: trained on the training split minus the validation split,
    /// scored on the validation split; Gaussian accountant, the study's first seed.
    Grid {
        /// The learning rate tried.
        lr: f64,
    },
    /// A final run with the learning rate its grid chose, on the whole training split.
    Final {
        /// Seed (init, bins, noise).
        seed: u64,
        /// `None` for the non-private runs.
        accountant: Option<AccountantKind>,
    },
}

/// One training run of the study.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Job {
    /// Data set.
    pub data: Data,
    /// `None` = non-private.
    pub method: Option<Method>,
    /// Schedule name and β.
    pub schedule: (&'static str, f64),
    /// Grid or final.
    pub kind: Kind,
}

/// A method's name in files and reports (`non-private` for None).
pub fn method_name(m: Option<Method>) -> &'static str {
    m.map_or("non-private", |m| m.name())
}

/// An accountant's name in files and reports (`none` for the non-private runs).
pub fn accountant_name(a: Option<AccountantKind>) -> &'static str {
    a.map_or("none", |a| a.name())
}

/// The grid whose learning rate a run uses: (data set, method, schedule of the grid).
pub type Cell = (Data, Option<Method>, &'static str);

impl Job {
    /// The accountant (grid runs use the Gaussian one; non-private runs none).
    pub fn accountant(&self) -> Option<AccountantKind> {
        match self.kind {
            Kind::Final { accountant, .. } => accountant,
            Kind::Grid { .. } => self.method.map(|_| AccountantKind::Gaussian),
        }
    }

    /// The seed of the run.
    pub fn seed(&self, s: &Settings) -> u64 {
        match self.kind {
            Kind::Final { seed, .. } => seed,
            Kind::Grid { .. } => s.seed,
        }
    }

    /// Whether this is a grid run.
    pub fn is_grid(&self) -> bool {
        matches!(self.kind, Kind::Grid { .. })
    }

    /// The run's folder and result-file name.
    pub fn name(&self) -> String {
        let (d, m, sch) = (self.data.name(), method_name(self.method), self.schedule.0);
        match self.kind {
            Kind::Grid { lr } => format!("grid-{d}-{m}-{sch}-lr{}", f(lr)),
            Kind::Final { seed, accountant } => {
                format!("{d}-{m}-{sch}-{}-seed{seed}", accountant_name(accountant))
            }
        }
    }

    /// The grid this run belongs to (grid runs) or takes its learning rate from (final runs).
    pub fn cell(&self, s: &Settings) -> Cell {
        let sch = if self.is_grid() || s.of(self.data).grid_per_schedule {
            self.schedule.0
        } else {
            SCHEDULES[0].0
        };
        (self.data, self.method, sch)
    }

    /// Epochs of the run.
    pub fn epochs(&self, s: &Settings) -> usize {
        let d = s.of(self.data);
        if self.is_grid() {
            d.grid_epochs
        } else {
            d.epochs
        }
    }

    /// Expected seconds with today's trainer (the cost model of [`DataSettings`]).
    pub fn estimate(&self, s: &Settings) -> f64 {
        let d = s.of(self.data);
        let held_out = if self.is_grid() { d.validation } else { 0 };
        let n = d.train_examples.unwrap_or(d.data.full_train());
        let fraction = n.saturating_sub(held_out) as f64 / d.data.full_train() as f64;
        let mc = if self.accountant() == Some(AccountantKind::McBnb) {
            d.seconds_mc_bnb
        } else {
            0.0
        };
        d.seconds_per_run + mc + self.epochs(s) as f64 * d.seconds_per_epoch * fraction
    }

    /// The one-line description of the progress output.
    pub fn label(&self) -> String {
        format!(
            "{} {} {} {}",
            self.data.name(),
            method_name(self.method),
            self.schedule.0,
            accountant_name(self.accountant())
        )
    }
}

/// Which final runs a block of the order holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Block {
    /// Non-private and every study method, decaying schedules, Gaussian accountant.
    Gaussian,
    /// The constant-rate baselines, Gaussian accountant.
    Constant,
    /// Every study method, decaying schedules, balls-in-bins Monte Carlo accountant.
    McBnb,
}

/// The final runs of one block: seeds (outer), schedules, then methods in [`Method::ALL`]'s
/// order, which puts each lr- method right after its plain form (pairs complete early).
fn block(s: &Settings, data: Data, seeds: std::ops::Range<usize>, b: Block) -> Vec<Job> {
    let methods: Vec<Option<Method>> = std::iter::once(None)
        .chain(study_methods().into_iter().map(Some))
        .collect();
    let mut out = Vec::new();
    for k in seeds {
        let seed = s.seed + k as u64;
        let schedules: &[(&'static str, f64)] = match b {
            Block::Constant => &[CONSTANT],
            _ => &SCHEDULES,
        };
        for &schedule in schedules {
            for &m in &methods {
                let accountant = match (b, m) {
                    (_, None) if b == Block::McBnb => continue,
                    (_, None) => None,
                    (Block::Constant, Some(_)) if !is_baseline(m) => continue,
                    (Block::McBnb, Some(_)) => Some(AccountantKind::McBnb),
                    (_, Some(_)) => Some(AccountantKind::Gaussian),
                };
                out.push(Job {
                    data,
                    method: m,
                    schedule,
                    kind: Kind::Final { seed, accountant },
                });
            }
        }
    }
    out
}

/// Every run of the study in the order it runs (data sets in `only`, all when empty).
pub fn plan(s: &Settings, only: &[Data]) -> Vec<Job> {
    let seeds = |d: Data| s.of(d).seeds;
    let (i, c) = (Data::Imdb, Data::Cifar10);
    let blocks = [
        block(s, i, 0..1, Block::Gaussian),
        block(s, i, 0..1, Block::Constant),
        block(s, c, 0..1, Block::Gaussian),
        block(s, i, 1..seeds(i), Block::Gaussian),
        block(s, i, 1..seeds(i), Block::Constant),
        block(s, c, 1..seeds(c), Block::Gaussian),
        block(s, c, 0..seeds(c), Block::Constant),
        block(s, i, 0..seeds(i), Block::McBnb),
        block(s, c, 0..seeds(c), Block::McBnb),
    ];
    let mut out = Vec::new();
    let mut cells: Vec<Cell> = Vec::new();
    for job in blocks.into_iter().flatten() {
        if !only.is_empty() && !only.contains(&job.data) {
            continue;
        }
        let cell = job.cell(s);
        if !cells.contains(&cell) {
            cells.push(cell);
            out.extend(plan_grid(s, &job));
        }
        out.push(job);
    }
    out
}

/// The grid runs of the cell of `job` (the grid a final run takes its learning rate from).
pub fn plan_grid(s: &Settings, job: &Job) -> Vec<Job> {
    let d = s.of(job.data);
    let centre = if job.method.is_some() {
        d.lr
    } else {
        d.lr_nonprivate
    };
    let (_, _, sch) = job.cell(s);
    let schedule = std::iter::once(CONSTANT)
        .chain(SCHEDULES)
        .find(|x| x.0 == sch)
        .expect("a known schedule");
    s.grid_factors
        .iter()
        .map(|&k| Job {
            data: job.data,
            method: job.method,
            schedule,
            kind: Kind::Grid { lr: centre * k },
        })
        .collect()
}

/// The learning rate a grid chose: the best validation accuracy (the smaller rate on ties);
/// the smallest rate when no grid run has an accuracy (all diverged: the final run will say
/// so); `None` for an empty grid.
pub fn choose(grid: &[(f64, Option<f64>)]) -> Option<f64> {
    let mut best: Option<(f64, f64)> = None;
    let mut sorted = grid.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    for &(lr, acc) in &sorted {
        if let Some(a) = acc
            && best.is_none_or(|(_, b)| a > b)
        {
            best = Some((lr, a));
        }
    }
    best.map(|(lr, _)| lr).or(sorted.first().map(|x| x.0))
}

/// The training config of a run with learning rate `lr`.
pub fn config(job: &Job, lr: f64, s: &Settings, data_dir: &Path) -> Result<TrainConfig> {
    let d = s.of(job.data);
    crate::train_config::build(&RunSpec {
        name: job.name(),
        seed: job.seed(s),
        dataset: job.data.name(),
        data_dir,
        train_examples: d.train_examples,
        test_examples: d.test_examples,
        validation: job.is_grid().then_some((d.validation, s.validation_seed)),
        epochs: job.epochs(s),
        batch: d.batch,
        lr,
        eval_each_epoch: !job.is_grid(),
        schedule: job.schedule,
        private: job
            .method
            .zip(job.accountant())
            .map(|(m, a)| (m, d.band, a)),
        matmul: d.matmul,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(jobs: &[Job], s: &Settings) {
        // Every final run comes after the whole grid it takes its learning rate from.
        for (i, j) in jobs.iter().enumerate() {
            if !j.is_grid() {
                let cell = j.cell(s);
                let before = jobs[..i]
                    .iter()
                    .filter(|g| g.is_grid() && g.cell(s) == cell)
                    .count();
                assert_eq!(before, s.grid_factors.len(), "{}", j.name());
            }
        }
        let mut names: Vec<String> = jobs.iter().map(Job::name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), jobs.len(), "unique names");
    }

    #[test]
    fn methods_come_from_the_method_enum() {
        let names: Vec<&str> = study_methods().iter().map(|m| m.name()).collect();
        assert_eq!(
            names,
            [
                "identity",
                "bsr",
                "lr-bsr",
                "bisr",
                "lr-bisr",
                "bandmf",
                "lr-bandmf",
                "bandinv",
                "lr-bandinv",
                "blt",
                "lr-blt"
            ]
        );
        let base: Vec<&str> = std::iter::once(None)
            .chain(study_methods().into_iter().map(Some))
            .filter(|m| is_baseline(*m))
            .map(method_name)
            .collect();
        assert_eq!(base, ["non-private", "identity", "bsr", "bisr"]);
    }

    #[test]
    fn plan_counts_order_and_grids() {
        let s = Settings::defaults(0);
        let jobs = plan(&s, &[]);
        check(&jobs, &s);
        let finals = |d: Data| jobs.iter().filter(|j| !j.is_grid() && j.data == d).count();
        // Per seed: (1 + 11) × 2 Gaussian + 11 × 2 mc-bnb + 4 constant = 50.
        assert_eq!((finals(Data::Imdb), finals(Data::Cifar10)), (150, 100));
        let grids = |d: Data| jobs.iter().filter(|j| j.is_grid() && j.data == d).count();
        // IMDB: a grid of 4 rates per (method, schedule) = 12 × 2 + 4 constant cells; CIFAR-10:
        // per method (12).
        assert_eq!((grids(Data::Imdb), grids(Data::Cifar10)), (112, 48));
        // The order: IMDB seed 0 (Gaussian) first, then CIFAR-10 seed 0, more seeds, the
        // constant-rate baselines, mc-bnb.
        let first_final = jobs.iter().find(|j| !j.is_grid()).unwrap();
        assert_eq!(
            first_final.name(),
            "imdb-non-private-exponential-none-seed0"
        );
        let pos = |name: &str| jobs.iter().position(|j| j.name() == name).unwrap();
        let order = [
            "imdb-lr-blt-cosine-gaussian-seed0",
            "imdb-bisr-constant-gaussian-seed0",
            "cifar10-identity-exponential-gaussian-seed0",
            "cifar10-lr-blt-cosine-gaussian-seed0",
            "imdb-identity-exponential-gaussian-seed1",
            "imdb-lr-bisr-cosine-gaussian-seed2",
            "cifar10-bsr-exponential-gaussian-seed1",
            "cifar10-bisr-constant-gaussian-seed1",
            "imdb-bsr-exponential-mc-bnb-seed0",
            "cifar10-lr-bisr-cosine-mc-bnb-seed1",
        ];
        assert!(order.windows(2).all(|w| pos(w[0]) < pos(w[1])), "{order:?}");
        // lr- methods right after their plain forms (after its grid for the first seed).
        assert_eq!(
            pos("imdb-lr-bisr-exponential-gaussian-seed1"),
            pos("imdb-bisr-exponential-gaussian-seed1") + 1
        );
        // CIFAR-10's cosine runs reuse the exponential grid; IMDB has its own.
        let cos = Job {
            data: Data::Cifar10,
            method: Some(Method::Bisr),
            schedule: SCHEDULES[1],
            kind: Kind::Final {
                seed: 0,
                accountant: Some(AccountantKind::McBnb),
            },
        };
        assert_eq!(
            cos.cell(&s),
            (Data::Cifar10, Some(Method::Bisr), "exponential")
        );
        let only = plan(&s, &[Data::Cifar10]);
        assert!(only.iter().all(|j| j.data == Data::Cifar10) && only.len() == 148);
        check(&only, &s);
    }

    #[test]
    fn configs_validate_and_grid_runs_hold_out_validation() {
        let s = Settings::defaults(3);
        for job in plan(&s, &[]) {
            let c = config(&job, 0.5, &s, Path::new("/nonexistent")).unwrap();
            let sh = c.shape();
            let d = s.of(job.data);
            let n = job.data.full_train() - if job.is_grid() { d.validation } else { 0 };
            assert_eq!(
                (sh.num_train, sh.epochs),
                (n, job.epochs(&s)),
                "{}",
                job.name()
            );
            assert_eq!(c.data.validation.is_some(), job.is_grid());
            assert_eq!(c.seed, Some(job.seed(&s)));
            assert!(job.estimate(&s) > 0.0);
        }
    }

    #[test]
    fn grid_choice_takes_the_best_validation_accuracy() {
        assert_eq!(
            choose(&[(1.0, Some(0.5)), (0.5, Some(0.7)), (2.0, None)]),
            Some(0.5)
        );
        assert_eq!(choose(&[(2.0, Some(0.7)), (1.0, Some(0.7))]), Some(1.0));
        assert_eq!(choose(&[(2.0, None), (1.0, None)]), Some(1.0));
        assert_eq!(choose(&[]), None);
    }
}
