//! `pelt`: run sweeps of parameter-efficient tuning methods and print the comparison tables.
//!
//! The binary only runs: the command line, experiment files, the sweep's grid, keys, shards and
//! resume. Training lives in the task-family crates (`pelt-classify`, `pelt-seq2seq`) on the shared
//! loop of `pelt-train`; records in `pelt-records`; tables, plots and pages in `pelt-report`.

#![warn(missing_docs)]

mod bench;
mod devcheck;
mod experiment;
mod host;
mod registry;
mod slurm;
mod sweep;
mod weights;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use pelt_classify::pretrain;
use pelt_report::{plot, table, Suite};
use std::path::{Path, PathBuf};

/// pelt: benchmarks parameter-efficient tuning methods side by side.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run an experiment file: every method × task × data size × seed not already done.
    Sweep {
        /// The experiment YAML.
        file: PathBuf,
        /// GLUE folder in the official layout (overrides the file's glue_dir).
        #[arg(long)]
        glue_dir: Option<PathBuf>,
        /// XL-Sum folder in the release's layout (overrides the file's xlsum_dir).
        #[arg(long)]
        xlsum_dir: Option<PathBuf>,
        /// NER folder holding wnut17/, mit-restaurant/, mit-movie/, conll2003/ (overrides the file's
        /// ner_dir).
        #[arg(long)]
        ner_dir: Option<PathBuf>,
        /// Where suites are written.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Folder of the assets installed by the set-up.
        #[arg(long, env = "PELT_ASSETS", default_value = "assets")]
        assets: PathBuf,
        /// Run only slice i of n (`i/n`, 0-based) of the runs the filters below admit (every shard must
        /// get the same filters); records from all slices merge.
        #[arg(long, default_value = "0/1")]
        shard: String,
        /// `cpu` or `cuda` (`cuda:N`).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Validate the file and print the grid without training.
        #[arg(long)]
        dry_run: bool,
        /// Run only these tasks (comma-separated).
        #[arg(long, value_delimiter = ',')]
        tasks: Vec<String>,
        /// Run only these method labels (comma-separated).
        #[arg(long, value_delimiter = ',')]
        methods: Vec<String>,
        /// Run only these seeds (comma-separated).
        #[arg(long, value_delimiter = ',')]
        seeds: Vec<u64>,
        /// Run only these data sizes (comma-separated labels: `100`, `16-shot`, `all`).
        #[arg(long, value_delimiter = ',')]
        sizes: Vec<String>,
        /// libtorch intra-op threads, over the file's `training.threads` (e.g. 1 for each of two shards
        /// run side by side on two cores); results keep their hashes.
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Suite folders (comma-separated) whose finished runs this grid takes over where they are the
        /// same run (task, method, config, learning rate, training, data size, seed, and the same
        /// examples by digest) instead of training them again, e.g. the UniPELT table's K columns from
        /// unipelt-lowres.
        #[arg(long, value_delimiter = ',')]
        reuse: Vec<PathBuf>,
        /// Leave the tables and plots to a later `pelt table` / `pelt plot` (a Slurm array's shards do: its
        /// table job builds them once).
        #[arg(long)]
        no_report: bool,
        /// Keep each run's best-dev parameters (method, head, check batch) as an adapter folder,
        /// `<suite>/adapters/<run key>/`, for `pelt export` (classification suites).
        #[arg(long)]
        save_adapters: bool,
    },
    /// Write (and with `--submit`, submit) a Slurm job array running the sweep in shards into one suite,
    /// plus a table job that runs after every shard (`--dependency=afterany`). Resubmitting after
    /// failures or a time limit runs only the runs that have no record.
    Slurm {
        /// The experiment YAML (validated before anything is written).
        file: PathBuf,
        /// Array tasks; task i runs `pelt sweep --shard i/N`.
        #[arg(long)]
        shards: usize,
        /// CPUs per task (each shard's libtorch threads).
        #[arg(long, default_value_t = 1)]
        cpus_per_task: usize,
        /// Slurm partition.
        #[arg(long)]
        partition: Option<String>,
        /// Time limit per array task (Slurm's format, e.g. `4:00:00`).
        #[arg(long)]
        time: Option<String>,
        /// Generic resources per task, e.g. `gpu:1` (then give `--device cuda`).
        #[arg(long)]
        gres: Option<String>,
        /// Memory per task (e.g. `8G`).
        #[arg(long)]
        mem: Option<String>,
        /// Slurm account.
        #[arg(long)]
        account: Option<String>,
        /// Device each shard trains on (`cpu`, `cuda`).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// GLUE folder in the official layout (passed to every shard).
        #[arg(long)]
        glue_dir: Option<PathBuf>,
        /// Where suites are written (a folder every node sees).
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Folder of the assets installed by the set-up.
        #[arg(long, env = "PELT_ASSETS", default_value = "assets")]
        assets: PathBuf,
        /// Submit with `sbatch` (the array, then the table job depending on it); otherwise only write the
        /// scripts and print the commands.
        #[arg(long)]
        submit: bool,
    },
    /// Train every method for a few steps on a device and on the CPU from the same weights and compare
    /// the losses (the GPU check's agreement part; on `--device cpu` it exercises the check itself).
    CheckDevice {
        /// `cpu`, `cuda` or `cuda:N`.
        #[arg(long, default_value = "cuda")]
        device: String,
    },
    /// Write an adapter a sweep kept (`--save-adapters`) in a format Python loads: `peft` (LoRA, prompt
    /// tuning placed at the input embeddings, LN-tuning) or `adapterhub` (Pfeiffer, Houlsby and parallel
    /// bottleneck adapters), with pelt's task head and a check batch beside it.
    Export {
        /// The adapter folder (`results/<suite>/adapters/<run key>`), or a run key found under
        /// `--results`.
        adapter: PathBuf,
        /// Target format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Where suites are (to find a run key).
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// Read a peft LoRA or prompt-tuning adapter folder (a pelt export, or one trained in Python) into
    /// a pelt adapter folder; when the folder carries a pelt head and check batch, show that pelt
    /// computes the same logits from the imported adapter.
    Import {
        /// The peft adapter folder.
        dir: PathBuf,
        /// The backbone the adapter belongs to (an HF model folder).
        #[arg(long)]
        backbone: PathBuf,
        /// Output folder (a pelt adapter folder).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the comparison table of a suite from its records.
    Table {
        /// Suite folder (e.g. results/default) or its experiment file.
        suite: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "markdown")]
        format: Format,
        /// Cells from this test metric (`rouge1`, `rouge2`, `rougeL`, `accuracy`, …) instead of the task
        /// score.
        #[arg(long)]
        metric: Option<String>,
        /// Also set this method (row label, e.g. `unipelt`) against the best other method of each column,
        /// with the difference and its standard error over seeds.
        #[arg(long)]
        against: Option<String>,
        /// Also print, per column, the rows the best row is above by more than both rows' seed std.
        #[arg(long)]
        noise: bool,
        /// Fail (exit status 1) when a record file of the suite is not a record; by default such files
        /// are named, left out and counted, and the table covers the rest.
        #[arg(long)]
        strict: bool,
        /// Also print what the suite cost: run time, wall time, runs per hour, per method, and what the
        /// rest of its grid needs at that pace (sizing a cluster request from a pilot).
        #[arg(long)]
        cost: bool,
        /// Also print the learning-rate search: every trial of every searched cell, its mean dev and test
        /// scores, and the chosen one (`budget.md`).
        #[arg(long)]
        budget: bool,
    },
    /// Plot a suite's records: score against data size per method, score against % trainable
    /// parameters, and dev score against training step where the records keep curves; SVG and PNG.
    Plot {
        /// Suite folder (e.g. results/default) or its experiment file.
        suite: PathBuf,
        /// Where the plots go (default: the suite's `plots/` folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Folder of the assets installed by the set-up (holds the charts' font).
        #[arg(long, env = "PELT_ASSETS", default_value = "assets")]
        assets: PathBuf,
    },
    /// Time pelt's training step (the pelt side of `just bench-compare`); prints one JSON report.
    Bench {
        /// Registry name of the method.
        #[arg(long, required_unless_present = "matmul")]
        method: Option<String>,
        /// Method config as YAML (`{r: 8}`); defaults when empty.
        #[arg(long, default_value = "")]
        config: String,
        /// Rows per batch.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Tokens per row of the fixed batches.
        #[arg(long, default_value_t = 128)]
        len: usize,
        /// Use real SST-2 batches from this GLUE folder (padded per batch, bucketed) instead.
        #[arg(long)]
        sst2: Option<PathBuf>,
        /// Untimed steps first.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Timed steps.
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// libtorch intra-op threads (0 = libtorch's default).
        #[arg(long, default_value_t = 2)]
        threads: i32,
        /// Measure the fp32 matmul rate (2048 × 2048) instead.
        #[arg(long)]
        matmul: bool,
        /// Device of the training steps (`cpu`, `cuda`, `cuda:N`).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Precision of the training steps (`fp32`, `bf16`, `fp16`), as `training.precision`.
        #[arg(long, default_value = "fp32")]
        precision: String,
        /// Time evaluation instead of training: forward passes (no gradients, dropout off) over the
        /// SST-2 dev set of this GLUE folder, `--steps` passes after `--warmup` untimed ones.
        #[arg(long)]
        eval: Option<PathBuf>,
        /// The evaluation batches: `pelt` (by length, up to 64 rows and 2048 padded tokens each, as
        /// `pelt sweep` evaluates) or `trainer` (8 in file order padded per batch, Hugging Face Trainer's
        /// evaluation defaults).
        #[arg(long, default_value = "pelt")]
        eval_batches: String,
        /// Folder of the assets installed by the set-up.
        #[arg(long, env = "PELT_ASSETS", default_value = "assets")]
        assets: PathBuf,
        /// The text encoder's folder (a BERT-family or MPNet checkpoint); default: the assets' MiniLM.
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Pretrain the vision sweeps' small ViT on a shipped image set and save it as an HF ViT folder
    /// (skipped when the folder already holds one made with the same settings).
    PretrainVit {
        /// Output folder.
        #[arg(long, default_value = "assets/vit-mnist5k")]
        out: PathBuf,
        /// Epochs over the training pool.
        #[arg(long)]
        epochs: Option<usize>,
        /// Folder of the assets installed by the set-up.
        #[arg(long, env = "PELT_ASSETS", default_value = "assets")]
        assets: PathBuf,
    },
    /// List registered methods with their sites, form, scale, parameter formula and whether they
    /// train federated (and if not, why).
    List {
        /// Print a Markdown table (for the README).
        #[arg(long)]
        markdown: bool,
    },
}

/// Export formats on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormat {
    /// Hugging Face peft (`adapter_config.json` + `adapter_model.safetensors`).
    Peft,
    /// The AdapterHub `adapters` library (`adapter_config.json` + `adapter_model.safetensors`).
    Adapterhub,
}

/// Table formats on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// GitHub Markdown.
    Markdown,
    /// Comma-separated values (one row per method, mean and std columns per cell).
    Csv,
    /// A LaTeX tabular.
    Latex,
}

impl From<Format> for table::Format {
    fn from(f: Format) -> table::Format {
        match f {
            Format::Markdown => table::Format::Markdown,
            Format::Csv => table::Format::Csv,
            Format::Latex => table::Format::Latex,
        }
    }
}

/// The adapter folder of run `key` in any suite under `results`.
fn find_adapter(results: &Path, key: &Path) -> Result<PathBuf> {
    let key = key.to_string_lossy();
    let suites = std::fs::read_dir(results).with_context(|| format!("{}: cannot list suites", results.display()))?;
    for suite in suites.flatten() {
        let dir = suite.path().join("adapters").join(key.as_ref());
        if dir.join(pelt_interop::folder::META_FILE).is_file() {
            return Ok(dir);
        }
    }
    bail!("{key}: no adapter folder of that name, and no run of that key under {}/*/adapters (sweep with --save-adapters)", results.display())
}

fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let parsed = s.split_once('/').and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?)));
    match parsed {
        Some((i, n)) if n > 0 && i < n => Ok((i, n)),
        _ => bail!("--shard `{s}`: expected i/n with 0 <= i < n"),
    }
}

fn parse_device(s: &str) -> Result<tch::Device> {
    Ok(match s {
        "cpu" => tch::Device::Cpu,
        "cuda" => tch::Device::Cuda(0),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => tch::Device::Cuda(n),
            None => bail!("--device `{s}`: expected cpu, cuda or cuda:N"),
        },
    })
}

/// Each row's method family from the registry, full fine-tuning and the linear probe as the references
/// every panel of the score-vs-size chart shows.
fn families(records: &[pelt_records::Record], registry: &pelt_core::Registry) -> plot::Families {
    let family = |name: &str| match name {
        "full" | "head_only" => plot::REFERENCE.to_owned(),
        other => registry.get(other).map_or_else(|_| "other".to_owned(), |e| e.info.family.to_owned()),
    };
    records.iter().map(|r| (r.method.clone(), family(&r.method_name))).collect()
}

/// Draws a suite's plots into `out` (and refreshes its page, which shows them).
fn plots(
    dir: &Path,
    records: &[pelt_records::Record],
    suite: Option<&Suite>,
    registry: &pelt_core::Registry,
    out: &Path,
    assets: &Path,
) -> Result<Vec<PathBuf>> {
    let font = assets.join("fonts/Roboto-Regular.ttf");
    pelt_report::write_plots(dir, records, suite, &families(records, registry), out, &font)
}

/// Writes to stdout; a closed pipe (`pelt table … | head`) ends the program quietly instead of
/// panicking, as command-line tools do.
fn emit(text: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// `print!` through [`emit`].
macro_rules! out {
    ($($t:tt)*) => { emit(format_args!($($t)*)) };
}

/// `println!` through [`emit`].
macro_rules! outln {
    () => { emit(format_args!("\n")) };
    ($($t:tt)*) => {{ emit(format_args!($($t)*)); emit(format_args!("\n")); }};
}

/// Keeps freed memory in the process for the next step instead of handing it back to the kernel.
///
/// libtorch allocates every activation of a training step afresh through glibc's malloc; by default
/// glibc serves large blocks with fresh mmaps and trims the heap's top when it is freed, so each step
/// faults its pages in again and the kernel zeroes them (a profile of a LoRA step showed 14% of samples
/// in `clear_page_erms`). Raising the mmap threshold to glibc's maximum (32 MiB) and switching trimming
/// off makes the second step reuse the first one's memory. The process's peak stays what it was; its
/// resident size no longer shrinks between steps. `PELT_MALLOC=default` keeps glibc's behaviour (for
/// comparisons).
fn tune_allocator() {
    if std::env::var("PELT_MALLOC").is_ok_and(|v| v == "default") {
        return;
    }
    // SAFETY: mallopt only changes allocator parameters; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
    }
}

fn main() -> Result<()> {
    tune_allocator();
    let cli = Cli::parse();
    let root = std::env::current_dir()?;
    let registry = registry::registry();
    match cli.command {
        Command::Sweep {
            file,
            glue_dir,
            xlsum_dir,
            ner_dir,
            results,
            assets,
            shard,
            device,
            dry_run,
            tasks,
            methods,
            seeds,
            sizes,
            threads,
            reuse,
            no_report,
            save_adapters,
        } => {
            let shard = parse_shard(&shard)?;
            let device = parse_device(&device)?;
            if device.is_cuda() {
                // Deterministic where libtorch allows: cuBLAS reads its workspace setting when CUDA
                // starts, which is after this (the model is not loaded yet).
                if std::env::var_os("CUBLAS_WORKSPACE_CONFIG").is_none() {
                    std::env::set_var("CUBLAS_WORKSPACE_CONFIG", ":4096:8");
                }
                if !pelt_amp::deterministic(true) {
                    eprintln!("warning: libtorch refused deterministic algorithms; CUDA runs may not repeat exactly");
                }
            }
            let places = experiment::Places {
                glue_dir: glue_dir.as_deref(),
                xlsum_dir: xlsum_dir.as_deref(),
                ner_dir: ner_dir.as_deref(),
                assets: Some(&assets),
            };
            let (exp, _dims) = experiment::Experiment::load(&file, &registry, &root, &places)?;
            let cells = exp.methods.len() * exp.tasks.len() * exp.data_sizes.len() * exp.seeds.len();
            if dry_run {
                outln!(
                    "{}: valid; {cells} runs ({} methods × {} tasks × {} sizes × {} seeds)",
                    file.display(),
                    exp.methods.len(),
                    exp.tasks.len(),
                    exp.data_sizes.len(),
                    exp.seeds.len()
                );
                return Ok(());
            }
            let started = std::time::Instant::now();
            let started_unix =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            for t in &tasks {
                if !exp.tasks.contains(t) {
                    bail!("--tasks: `{t}` is not a task of {}", file.display());
                }
            }
            for m in &methods {
                if !exp.methods.iter().any(|s| s.label() == m) {
                    bail!("--methods: `{m}` is not a method label of {}", file.display());
                }
            }
            let sizes = sizes
                .iter()
                .map(|s| match experiment::DataSize::parse(s) {
                    Some(size) if exp.data_sizes.contains(&size) => Ok(size),
                    _ => bail!("--sizes: `{s}` is not a data size of {}", file.display()),
                })
                .collect::<Result<Vec<_>>>()?;
            let only = sweep::Only { tasks, methods, seeds, sizes };
            let opts = sweep::SweepOptions {
                root: root.clone(),
                results: results.clone(),
                assets,
                shard,
                device,
                only,
                threads,
                reuse,
                save_adapters,
            };
            let (ran, skipped, failed) = sweep::sweep(&exp, &registry, &opts)?;
            let suite_dir = results.join(&exp.name);
            let suite = exp.suite();
            let loaded = pelt_report::load_records(&suite_dir)?;
            if !no_report {
                outln!("{}", pelt_report::write_tables(&suite_dir, &loaded.records, Some(&suite))?);
                if let Some(w) = pelt_report::left_out(&loaded) {
                    eprintln!("{w}");
                }
                // A plot that cannot be drawn (no font installed) must not hide the finished sweep.
                let out = suite_dir.join("plots");
                match plots(&suite_dir, &loaded.records, Some(&suite), &registry, &out, &opts.assets) {
                    Ok(files) => outln!(
                        "plots: {}",
                        files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
                    ),
                    Err(e) => eprintln!("warning: no plots: {e:#}"),
                }
            }
            // This sweep's runs: their run time summed, and the pace over the sweep's wall time.
            let since = started_unix.saturating_sub(1);
            let mine = pelt_report::cost::Pace::of(loaded.records.iter().filter(|r| r.finished_at >= since));
            let wall = started.elapsed().as_secs_f64();
            outln!(
                "{}: {ran} runs in {:.1} min ({skipped} skipped as done, {failed} failed); run time {:.1} min, {:.1} runs \
                 per hour of wall time; {} in {}",
                exp.name,
                wall / 60.0,
                mine.run_seconds / 60.0,
                mine.runs as f64 * 3600.0 / wall.max(1e-9),
                if no_report { "records" } else { "tables" },
                suite_dir.display()
            );
            if failed > 0 {
                bail!("{failed} runs failed; their records hold the errors, and a rerun retries them");
            }
        }
        Command::Bench {
            method,
            config,
            batch,
            len,
            sst2,
            warmup,
            steps,
            threads,
            matmul,
            device,
            precision,
            eval,
            eval_batches,
            assets,
            model,
        } => {
            if matmul {
                let gflops = bench::matmul_gflops(2048, 20, threads);
                outln!(
                    "{}",
                    serde_json::json!({"side": "pelt", "matmul_gflops": gflops, "threads": tch::get_num_threads()})
                );
                return Ok(());
            }
            if steps == 0 {
                bail!("--steps must be at least 1");
            }
            let batches = match sst2 {
                Some(glue_dir) => bench::Batches::Sst2 { glue_dir, batch },
                None => bench::Batches::Fixed { batch, len },
            };
            let method = method.unwrap_or_default();
            let config = bench::parse_config(&config)?;
            let model = model.unwrap_or_else(|| assets.join("minilm"));
            if let Some(glue_dir) = eval {
                let batching = bench::EvalBatching::parse(&eval_batches)?;
                let report =
                    bench::eval(&registry, &model, &method, &config, &glue_dir, batching, warmup, steps, threads)?;
                outln!("{}", serde_json::to_string(&report)?);
                return Ok(());
            }
            let on = bench::On {
                device: parse_device(&device)?,
                precision: serde_yaml::from_str(&precision)
                    .map_err(|_| anyhow::anyhow!("--precision `{precision}`: expected fp32, bf16 or fp16"))?,
            };
            let report = bench::run(&registry, &model, &method, &config, &batches, warmup, steps, threads, on)?;
            outln!("{}", serde_json::to_string(&report)?);
        }
        Command::Plot { suite, out, assets } => {
            let (dir, suite) = pelt_report::locate(&suite)?;
            let out = out.unwrap_or_else(|| dir.join("plots"));
            let loaded = pelt_report::load_records(&dir)?;
            let files = plots(&dir, &loaded.records, suite.as_ref(), &registry, &out, &assets)
                .with_context(|| format!("plotting {}", dir.display()))?;
            for f in files {
                outln!("{}", f.display());
            }
        }
        Command::Table { suite, format, metric, against, noise, strict, cost, budget } => {
            let (dir, suite) = pelt_report::locate(&suite)?;
            let loaded = pelt_report::load_records(&dir)?;
            pelt_report::write_tables(&dir, &loaded.records, suite.as_ref())
                .with_context(|| format!("building the table of {}", dir.display()))?;
            // Searched learning rates: each cell's chosen trial stands for its row.
            let chosen = pelt_report::budget::choose(&loaded.records);
            let records = &chosen.records;
            let mut table = table::build_on(records, suite.as_ref(), metric.as_deref())?;
            if let Some(c) = &chosen.caption {
                table.caption = format!("{}\n{c}", table.caption);
            }
            out!("{}", table.render(format.into()));
            if let Some(method) = against {
                out!("\n{}", table.against(&method)?);
            }
            if noise {
                out!("\n{}", table::separated(&table).unwrap_or_else(|| "No difference exceeds seed noise.\n".into()));
            }
            if format == Format::Markdown {
                if let Some(d) = table::diagnostics(records, suite.as_ref()) {
                    out!("\n{d}");
                }
                if let Some(s) = table::selection(records, &table) {
                    out!("\n{s}");
                }
                let order = suite.as_ref().map_or(&[][..], |s| s.methods.as_slice());
                if let Some(c) = pelt_report::communication::table(records, order) {
                    out!("\n{c}");
                }
            }
            if cost {
                out!("\n{}", pelt_report::cost::report(&loaded.records, suite.as_ref()));
            }
            if budget {
                out!("\n{}", chosen.report.as_deref().unwrap_or("No learning rate was searched in this suite.\n"));
            }
            if let Some(w) = pelt_report::left_out(&loaded) {
                eprintln!("{w}");
                if strict {
                    bail!("--strict: {} record files of {} are not records", loaded.unreadable.len(), dir.display());
                }
            }
        }
        Command::Slurm {
            file,
            shards,
            cpus_per_task,
            partition,
            time,
            gres,
            mem,
            account,
            device,
            glue_dir,
            results,
            assets,
            submit,
        } => {
            // A bad experiment file is refused here, not in a thousand array tasks.
            let places = experiment::Places {
                glue_dir: glue_dir.as_deref(),
                xlsum_dir: None,
                ner_dir: None,
                assets: Some(&assets),
            };
            let (exp, _) = experiment::Experiment::load(&file, &registry, &root, &places)?;
            parse_device(&device)?;
            let abs = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { root.join(p) };
            let mut sweep_args =
                vec!["--assets".to_owned(), abs(&assets).display().to_string(), "--device".to_owned(), device];
            if let Some(g) = &glue_dir {
                sweep_args.extend(["--glue-dir".to_owned(), abs(g).display().to_string()]);
            }
            let options: Vec<(String, String)> =
                [("partition", partition), ("time", time), ("gres", gres), ("mem", mem), ("account", account)]
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.to_owned(), v?)))
                    .collect();
            let request = slurm::Request {
                file: file.clone(),
                suite: exp.name.clone(),
                shards,
                results,
                sweep_args,
                options,
                cpus: cpus_per_task.max(1),
                pelt: std::env::current_exe().context("locating the pelt binary")?,
                root: root.clone(),
            };
            let scripts = slurm::write(&request)?;
            let cells = exp.methods.len() * exp.tasks.len() * exp.data_sizes.len() * exp.seeds.len();
            outln!("{}: {cells} runs in {shards} array tasks", file.display());
            outln!("wrote {} and {}", scripts.sweep.display(), scripts.table.display());
            if submit {
                let (array, table) = slurm::submit(&scripts)?;
                outln!("submitted array job {array} and table job {table} (after every task of {array})");
            } else {
                outln!(
                    "submit with: jobid=$(sbatch --parsable {}) && sbatch --dependency=afterany:$jobid {}",
                    scripts.sweep.display(),
                    scripts.table.display()
                );
            }
        }
        Command::CheckDevice { device } => {
            let device = parse_device(&device)?;
            let rows = devcheck::run(&registry, device);
            outln!("{}", devcheck::render(&rows, device));
            let failed: Vec<&str> = rows.iter().filter(|r| !r.ok()).map(|r| r.method.as_str()).collect();
            if !failed.is_empty() {
                bail!("{} methods disagree between the CPU and {device:?}: {}", failed.len(), failed.join(", "));
            }
        }
        Command::Export { adapter, format, out, results } => {
            let dir = if adapter.join(pelt_interop::folder::META_FILE).is_file() {
                adapter
            } else {
                find_adapter(&results, &adapter)?
            };
            let saved = pelt_interop::folder::read(&dir)?;
            let written = match format {
                ExportFormat::Peft => pelt_interop::peft::export(&saved, &out)?,
                ExportFormat::Adapterhub => pelt_interop::adapterhub::export(&saved, &out)?,
            };
            for path in written {
                outln!("wrote {}", path.display());
            }
        }
        Command::Import { dir, backbone, out } => {
            let model = pelt_backbone::load(&backbone, tch::Device::Cpu)
                .with_context(|| format!("loading backbone {}", backbone.display()))?;
            let imported = pelt_interop::peft::import(&dir, model.dims(), &backbone.display().to_string())?;
            pelt_interop::peft::write_imported(imported, &out)?;
            let saved = pelt_interop::folder::read(&out)?;
            outln!("wrote {} ({} from {})", out.display(), saved.meta.method, dir.display());
            match pelt_interop::folder::check(&saved, &registry, model.as_ref(), tch::Device::Cpu)? {
                Some(diff) => outln!(
                    "check batch: pelt's logits from the imported adapter differ from the exported ones by at most {diff:.2e}"
                ),
                None => outln!("no pelt head and check batch beside the adapter: nothing to compare"),
            }
        }
        Command::PretrainVit { out, epochs, assets } => {
            let mut settings = pretrain::default_settings();
            if let Some(e) = epochs {
                settings.training.epochs = e;
            }
            pretrain::pretrain(&settings, &registry, &assets, &out)?;
        }
        Command::List { markdown } => {
            if markdown {
                outln!("| method | family | sites | form | scale | trainable parameters | federated | paper |");
                outln!("|---|---|---|---|---|---|---|---|");
            }
            // Whether each method federates, under its default config, at the shipped backbone's sizes.
            let dims = pelt_backbone::BertConfig::minilm().dims();
            let federates = |e: &pelt_core::MethodEntry| match (e.build)(&(e.default_config)(), &dims, tch::Device::Cpu)
            {
                Ok(m) => m.federates().map_or_else(|why| format!("no: {why}"), |()| "yes".to_owned()),
                Err(err) => format!("unknown: {err}"),
            };
            // Families in the order of DESIGN.md, methods by name within each.
            const FAMILIES: [&str; 5] = ["selective", "adapters", "low-rank", "prompts", "mixtures"];
            let rank = |f: &str| FAMILIES.iter().position(|x| *x == f).unwrap_or(FAMILIES.len());
            let mut entries: Vec<_> = registry.entries().collect();
            entries.sort_by_key(|e| (rank(e.info.family), e.info.name));
            for e in entries {
                let i = &e.info;
                let sites = i.sites.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
                let (form, scale) = (i.form.as_str(), i.scale.as_str());
                let fed = federates(e);
                let line = if markdown {
                    format!(
                        "| `{}` | {} | {sites} | {form} | {scale} | {} | {fed} | {} |",
                        i.name, i.family, i.formula, i.paper
                    )
                } else {
                    format!(
                        "{:<24} {:<9} sites: {sites}; form: {form}; scale: {scale}; params: {}; federated: {fed}; {}",
                        i.name, i.family, i.formula, i.paper
                    )
                };
                outln!("{line}");
            }
        }
    }
    Ok(())
}
