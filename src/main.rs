//! The binary: parse flags, set up logging, run the app. Exit 2 on a bad flag or value.

use std::{
    fmt::Display,
    io::{IsTerminal, Write},
    process::ExitCode,
};

use clap::Parser;
use kube_event_exporter::{
    app::{self, App},
    config::{Args, Config, LogFormat},
};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // clap prints the error naming the flag and exits 2.
    let args = Args::parse();
    let config = match Config::try_from(args) {
        Ok(config) => config,
        Err(e) => {
            report(e);
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    app::exit_on_panic();

    // One worker: the async work is one pipeline task fed by the watch streams, and a second
    // worker only adds wake-ups across threads and memory arenas (measured against two: 10.8 →
    // 9.4 µs of CPU per event end to end, 34 → 19 MiB of RSS added by 100k Pods, the same CPU
    // per Pod update). Archive commits and queries, the heavy parts, run on the blocking pool.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("building the tokio runtime needs only threads and epoll");
    runtime.block_on(async {
        let app = match App::start(config).await {
            Ok(app) => app,
            Err(e) => {
                let code = e.exit_code();
                report(e);
                return ExitCode::from(code);
            }
        };
        give_memory_back(app.health());
        match app.run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                report(format_args!("{e:#}"));
                ExitCode::FAILURE
            }
        }
    })
}

/// Gives memory the process no longer uses back to the kernel, from a thread of its own:
///
/// - Every second, glibc's free pages (`malloc_trim`). Left alone, glibc returns only what is
///   freed at the top of a heap, and after a start's list the big buffers of its commits and
///   pages leave free pages in the middle that stay in the RSS. Measured on 100k archived
///   events: RSS 31.6–32.2 -> 27.2–28.9 MiB, with no CPU to measure. (A fixed
///   `M_MMAP_THRESHOLD` of 128 KiB gave 25.6–26.3 MiB but cost 10–20 % more CPU on a 1M-event
///   list.)
/// - Once, as soon as the exporter is ready, the pages of its own code and constants: start-up
///   (flags, kubeconfig, TLS, the first lists) touches nearly all of the binary, and the kernel
///   keeps every page touched in the RSS. What runs afterwards is read back from the file on
///   first use. Measured: idle RSS 11.5 -> 4.9 MiB, after 100k archived events 25.7 -> 19.4–20.0
///   MiB, no CPU to measure end to end.
///
/// The process's only unsafe code.
fn give_memory_back(health: std::sync::Arc<kube_event_exporter::health::Health>) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let _ = std::thread::Builder::new()
            .name("trim".into())
            .spawn(move || {
                let mut code_paged_out = false;
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    if !code_paged_out && health.is_ready() {
                        page_out_own_code();
                        code_paged_out = true;
                    }
                    // SAFETY: malloc_trim takes the allocator's own locks; glibc allows it from
                    // any thread at any time. Its result (whether memory was released) is not
                    // needed.
                    #[allow(unsafe_code)]
                    let _ = unsafe { libc::malloc_trim(0) };
                }
            });
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    drop(health);
}

/// Asks the kernel to page out this binary's read-only mappings (`MADV_PAGEOUT`, Linux 5.4;
/// older kernels refuse it, and nothing changes).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn page_out_own_code() {
    let (Ok(exe), Ok(maps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/maps"),
    ) else {
        return;
    };
    for line in maps.lines() {
        // address perms offset dev inode path
        let fields: Vec<&str> = line.splitn(6, ' ').collect();
        let [range, perms, _, _, _, path] = fields[..] else {
            continue;
        };
        if perms.contains('w') || std::path::Path::new(path.trim_start()) != exe {
            continue;
        }
        let Some((Ok(start), Ok(end))) = range
            .split_once('-')
            .map(|(s, e)| (usize::from_str_radix(s, 16), usize::from_str_radix(e, 16)))
        else {
            continue;
        };
        // SAFETY: the range is one whole mapping of the process, read-only and backed by the
        // binary's file: paging it out changes no byte of it (a later access reads the same
        // bytes back from the file). The result is not needed.
        #[allow(unsafe_code)]
        let _ =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) };
    }
}

/// Prints `error: …` to stderr. A stderr that cannot be written (full disk, closed pipe) loses
/// the line: `eprintln!` would panic instead.
fn report(e: impl Display) {
    let _ = writeln!(std::io::stderr(), "error: {e}");
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal: not in files, `docker logs` or journald.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        // A log line that cannot be written is lost, nothing else: the default reports the
        // failure with `eprintln!`, which panics on the same broken stderr.
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
