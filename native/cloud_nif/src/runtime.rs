//! The one tokio runtime of the NIF library: created on first use, alive as
//! long as the library is loaded. Its threads are not BEAM schedulers, so
//! network waits there never hold a scheduler.

use std::sync::OnceLock;

use tokio::runtime::Runtime;

/// Worker threads: the work is I/O-bound, bcrypt goes to the blocking pool.
const WORKERS: usize = 2;

/// The shared runtime, or why it could not be built.
pub fn runtime() -> Result<&'static Runtime, String> {
    static RT: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("cloudauth-nif")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the NIF's async runtime: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}
