//! `fuzz`: the long run of the relay's fuzzer (`relay::fuzz`), on stable Rust.
//!
//! ```text
//! cargo run --release -p bench --bin fuzz -- --cases 10000000 --seed 1
//! ```
//!
//! The test suite runs 20,000 cases of the same fuzzer; this runs as many as asked, in
//! parallel chunks with seeds of their own, and prints what was parsed. Any panic is a bug,
//! printed with its case number and seed so it can be replayed.

use std::time::Instant;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "fuzz")]
struct Cli {
    /// Cases in all.
    #[arg(long, default_value_t = 10_000_000)]
    cases: u64,
    /// The first chunk's seed; chunk i uses seed + i.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Parallel workers.
    #[arg(long, default_value_t = 2)]
    threads: u64,
}

fn main() {
    let cli = Cli::parse();
    let started = Instant::now();
    let per = cli.cases.div_ceil(cli.threads.max(1));
    let workers: Vec<_> = (0..cli.threads.max(1))
        .map(|i| {
            let cases = per.min(cli.cases.saturating_sub(i * per));
            let seed = cli.seed + i;
            std::thread::spawn(move || relay::fuzz::run(cases, seed))
        })
        .collect();
    let mut total = relay::fuzz::Stats::default();
    for worker in workers {
        let stats = worker.join().unwrap_or_else(|_| {
            eprintln!("fuzz: a case panicked (see above)");
            std::process::exit(1)
        });
        total.cases += stats.cases;
        total.commands_parsed += stats.commands_parsed;
        total.links_parsed += stats.links_parsed;
        total.durations_parsed += stats.durations_parsed;
        total.datagrams += stats.datagrams;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} cases in {secs:.1} s ({:.0}/s), no panic: {} commands, {} --link values and {} durations parsed, \
         {} datagrams through echo, upper, chat, lossy and the retrying client",
        total.cases,
        total.cases as f64 / secs,
        total.commands_parsed,
        total.links_parsed,
        total.durations_parsed,
        total.datagrams
    );
}
