//! Parts a service cannot live without — the node's producer, checkpoint writer, signature
//! verifiers and Raft's background tasks, the merchant API's chain follower — run
//! supervised. When one panics, or ends while the service still runs, the process logs
//! one line naming the part and why, and exits with `EXIT_PART_FAILED`. A process that
//! went on without its producer would serve reads and refuse every write for ever; one
//! that stops is restarted (systemd), and loses nothing: nothing is acknowledged before
//! it is durable.
//!
//! A panic is caught where it happens, by a panic hook that knows which part the thread
//! is running (a thread-local, set for a supervised thread's whole life and for each poll
//! of a supervised task): the same in builds that unwind (tests) and in release builds,
//! which abort on any panic (`panic = "abort"`) once the hook has run.

use std::cell::RefCell;
use std::future::Future;
use std::panic::PanicHookInfo;
use std::pin::Pin;
use std::sync::{Arc, Once};
use std::task::{Context, Poll};

/// The exit code of a process stopped because a part failed: EX_SOFTWARE of sysexits.h,
/// "an internal software error".
pub const EXIT_PART_FAILED: i32 = 70;

/// A supervised part that failed, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub part: &'static str,
    /// The panic's message and where it was raised, or why the part's end was unexpected.
    pub why: String,
}

type OnFailure = Arc<dyn Fn(&Failure) + Send + Sync>;

/// A named part of a service and what its failure does.
#[derive(Clone)]
pub struct Part {
    name: &'static str,
    on_failure: OnFailure,
}

thread_local! {
    /// The part this thread is running now, if any.
    static RUNNING: RefCell<Option<Part>> = const { RefCell::new(None) };
}

impl Part {
    /// A part whose failure stops the process (`stop_process`).
    pub fn vital(name: &'static str) -> Part {
        Part::with_on_failure(name, |failure| stop_process(failure))
    }

    /// A part whose failure calls `on_failure` (tests observe it; the part still ends).
    pub fn with_on_failure(
        name: &'static str,
        on_failure: impl Fn(&Failure) + Send + Sync + 'static,
    ) -> Part {
        install_hook();
        Part { name, on_failure: Arc::new(on_failure) }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Reports that the part failed without a panic: it ended while the service runs.
    pub fn failed(&self, why: impl std::fmt::Display) {
        (self.on_failure)(&Failure { part: self.name, why: why.to_string() });
    }

    /// Runs `body` on a new thread called `thread_name`, as this part.
    pub fn spawn_thread<T: Send + 'static>(
        self,
        thread_name: &str,
        body: impl FnOnce() -> T + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<T>> {
        std::thread::Builder::new().name(thread_name.to_string()).spawn(move || {
            RUNNING.with(|running| *running.borrow_mut() = Some(self));
            body()
        })
    }

    /// `task`, as this part: a future whose every poll runs as it (for `Handle::spawn`).
    pub fn task<F: Future>(self, task: F) -> Supervised<F> {
        Supervised { part: self, task: Box::pin(task) }
    }

    /// Spawns `task` on the current tokio runtime, as this part.
    pub fn spawn_task<F>(self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(self.task(task))
    }
}

/// A future that runs as a supervised part while it is polled.
pub struct Supervised<F> {
    part: Part,
    task: Pin<Box<F>>,
}

impl<F: Future> Future for Supervised<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let outer = RUNNING.with(|running| running.replace(Some(this.part.clone())));
        let polled = this.task.as_mut().poll(cx);
        RUNNING.with(|running| *running.borrow_mut() = outer);
        polled
    }
}

/// Logs the failure as one error line and exits the process with `EXIT_PART_FAILED`.
pub fn stop_process(failure: &Failure) -> ! {
    tracing::error!(
        "the {} failed: {}; stopping the process (exit code {EXIT_PART_FAILED}) so that it restarts from \
         what is on disk",
        failure.part,
        failure.why
    );
    std::process::exit(EXIT_PART_FAILED)
}

/// Installs, once, a panic hook that reports a panic in a supervised part to the part,
/// after the hook installed before it (the standard one prints the panic) has run.
fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            // A thread being torn down has no part any more.
            let part = RUNNING.try_with(|running| running.borrow().clone()).ok().flatten();
            if let Some(part) = part {
                part.failed(panic_message(info));
            }
        }));
    });
}

/// The panic's message and where it was raised.
fn panic_message(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let message = match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(text), _) => text,
        (_, Some(text)) => text.as_str(),
        _ => "a panic without a message",
    };
    match info.location() {
        Some(at) => format!("{message} (at {}:{})", at.file(), at.line()),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn recording(name: &'static str) -> (Part, Arc<Mutex<Vec<Failure>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        (Part::with_on_failure(name, move |f| record.lock().unwrap().push(f.clone())), seen)
    }

    #[test]
    fn a_panicking_thread_reports_its_part_and_message() {
        let (part, seen) = recording("producer");
        let thread = part.spawn_thread("producer", || panic!("supply invariant broken: issue 1")).unwrap();
        assert!(thread.join().is_err(), "the thread still ends with its panic");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].part, "producer");
        assert!(
            seen[0].why.starts_with("supply invariant broken: issue 1 (at host/src/supervise.rs:"),
            "{seen:?}"
        );
    }

    #[test]
    fn a_thread_that_returns_reports_nothing_and_gives_its_value() {
        let (part, seen) = recording("checkpoint writer");
        assert_eq!(part.spawn_thread("checkpoint", || 7).unwrap().join().unwrap(), 7);
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_task_reports_its_part_and_formatted_message() {
        let (part, seen) = recording("chain follower");
        let height = 12;
        let task = part.spawn_task(async move {
            tokio::task::yield_now().await;
            panic!("block {height} does not follow");
        });
        assert!(task.await.unwrap_err().is_panic());
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].part, "chain follower");
        assert!(seen[0].why.starts_with("block 12 does not follow (at "), "{seen:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_the_supervised_task_is_the_part_a_panic_elsewhere_is_not() {
        let (part, seen) = recording("leadership watch");
        // The part is set only while its task is polled: a task it spawns, and the
        // worker thread after the poll, run as no part.
        let outer = part.spawn_task(async {
            tokio::spawn(async { panic!("not the part") }).await.unwrap_err();
            "done"
        });
        assert_eq!(outer.await.unwrap(), "done");
        let other = std::thread::spawn(|| panic!("a thread of no part")).join();
        assert!(other.is_err());
        assert!(seen.lock().unwrap().is_empty(), "{:?}", seen.lock().unwrap());
    }

    #[test]
    fn an_unexpected_end_is_reported_by_the_part() {
        let (part, seen) = recording("chain follower");
        part.failed("it ended while the service runs");
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Failure { part: "chain follower", why: "it ended while the service runs".into() }]
        );
    }
}
