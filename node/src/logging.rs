//! The validator's logging, with the quiet-log toggle's two paths: off, debug logs of the
//! node's crates (per-tx lines) written synchronously to stderr; on, the configured level
//! through a non-blocking writer, so no tx path waits on a terminal or pipe.

use tpslab_api::config::Config;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber for a node run with `cfg`. Keep the guard for the process's
/// life: dropping it flushes and stops the quiet path's writer.
pub fn init(cfg: &Config) -> Option<WorkerGuard> {
    let level = &cfg.log.level;
    let filter = |directives: &str| {
        EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(directives))
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    if !crate::paths::quiet_log(cfg) {
        let verbose = format!(
            "{level},tpslab_mempool=debug,tpslab_statedb=debug,tpslab_consensus=debug,tpslab_node=debug"
        );
        tracing_subscriber::fmt()
            .with_env_filter(filter(&verbose))
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
        return None;
    }
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(writer)
        .with_ansi(false)
        .init();
    Some(guard)
}
