//! Log lines gathered in memory and written in batches by one background
//! thread. A request only appends its formatted line to a buffer under a
//! short lock: it makes no system call and wakes no other thread. The writer
//! thread takes the whole buffer every flush interval and writes it to each
//! sink, so a busy server makes a few writes a second instead of one per line
//! and sink. (nginx's `access_log ... buffer= flush=` makes the same trade.)
//!
//! If the sinks stall (a full disk, a blocked stdout) the buffer stops
//! growing at its cap: later lines are dropped and counted, never waited for,
//! and a warning with the count is logged once lines flow again. A sink that
//! fails a write loses that batch only and is tried again with the next one.

use std::io::{self, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// A destination for batches: stdout, the log file.
pub type Sink = Box<dyn Write + Send>;

/// What the writer thread has not taken yet.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    dropped_lines: u64,
}

struct Shared {
    pending: Mutex<Pending>,
    max_pending_bytes: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while appending leaves only whole lines behind.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `MakeWriter` given to the formatting layer: each event's line is
/// appended to the shared buffer.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Appends one formatted event to the buffer.
pub struct LineAppender<'a> {
    shared: &'a Shared,
}

impl Shared {
    /// Appends one whole line, or counts it dropped when the buffer is full.
    fn append(&self, line: &[u8]) {
        let mut pending = self.lock();
        if pending.bytes.len() + line.len() > self.max_pending_bytes {
            pending.dropped_lines += 1;
        } else {
            pending.bytes.extend_from_slice(line);
        }
    }
}

impl BatchWriter {
    /// Appends one whole line (the access line, formatted by its own code).
    pub fn append(&self, line: &[u8]) {
        self.shared.append(line);
    }
}

impl Write for LineAppender<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.shared.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = LineAppender<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineAppender {
            shared: &self.shared,
        }
    }
}

/// Stops the writer thread when dropped, after a last flush.
pub struct Flusher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the writer thread for `sinks`, flushing every `interval`, holding
/// at most `max_pending_bytes` between flushes.
pub fn start(
    sinks: Vec<Sink>,
    interval: Duration,
    max_pending_bytes: usize,
) -> io::Result<(BatchWriter, Flusher)> {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending::default()),
        max_pending_bytes,
    });
    let (stop, stopped) = mpsc::channel();
    let writer_side = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_batches(&writer_side, sinks, interval, &stopped))?;
    Ok((
        BatchWriter { shared },
        Flusher {
            stop: Some(stop),
            thread: Some(thread),
        },
    ))
}

fn write_batches(
    shared: &Shared,
    mut sinks: Vec<Sink>,
    interval: Duration,
    stopped: &mpsc::Receiver<()>,
) {
    let mut batch = Vec::new();
    let mut lost = LostLines::default();
    loop {
        // Every sender is gone (the Flusher was dropped): one last flush.
        let last = matches!(
            stopped.recv_timeout(interval),
            Err(RecvTimeoutError::Disconnected) | Ok(())
        );
        let dropped_lines = {
            let mut pending = shared.lock();
            std::mem::swap(&mut batch, &mut pending.bytes);
            std::mem::take(&mut pending.dropped_lines)
        };
        lost.dropped_lines += dropped_lines;
        lost.failed_writes += write_to_all(&mut sinks, &batch);
        // Keeps the allocation for the next swap, unless a stall made it huge.
        batch.clear();
        batch.shrink_to(shared.max_pending_bytes / 16);
        lost.report_now_and_then();
        if last {
            let rest = std::mem::take(&mut shared.lock().bytes);
            write_to_all(&mut sinks, &rest);
            return;
        }
    }
}

/// Lines lost since the last report, reported at most every
/// `LOST_REPORT_INTERVAL` so that a full disk does not flood stdout.
#[derive(Default)]
struct LostLines {
    dropped_lines: u64,
    failed_writes: u64,
    last_report: Option<Instant>,
}

const LOST_REPORT_INTERVAL: Duration = Duration::from_secs(10);

impl LostLines {
    fn report_now_and_then(&mut self) {
        let nothing_lost = self.dropped_lines == 0 && self.failed_writes == 0;
        let reported_recently = self
            .last_report
            .is_some_and(|at| at.elapsed() < LOST_REPORT_INTERVAL);
        if nothing_lost || reported_recently {
            return;
        }
        // Goes into the next batch like any other line.
        tracing::warn!(
            dropped_lines = self.dropped_lines,
            failed_writes = self.failed_writes,
            "log lines were lost: the log sinks did not keep up or failed"
        );
        *self = Self {
            last_report: Some(Instant::now()),
            ..Self::default()
        };
    }
}

/// Writes `bytes` to every sink; returns how many failed.
fn write_to_all(sinks: &mut [Sink], bytes: &[u8]) -> u64 {
    if bytes.is_empty() {
        return 0;
    }
    let mut failed = 0;
    for sink in sinks {
        if sink.write_all(bytes).and_then(|()| sink.flush()).is_err() {
            failed += 1;
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink whose bytes the test can read, or that fails every write.
    #[derive(Clone, Default)]
    struct Captured {
        bytes: Arc<Mutex<Vec<u8>>>,
        failing: bool,
    }

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.failing {
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn append(writer: &BatchWriter, line: &str) {
        writer.make_writer().write_all(line.as_bytes()).unwrap();
    }

    #[test]
    fn every_sink_gets_every_line_in_order_and_the_rest_on_drop() {
        let (a, b) = (Captured::default(), Captured::default());
        let (writer, flusher) = start(
            vec![Box::new(a.clone()), Box::new(b.clone())],
            Duration::from_secs(3600),
            1 << 20,
        )
        .unwrap();
        for i in 0..1000 {
            append(&writer, &format!("line {i}\n"));
        }
        drop(flusher);
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(
            String::from_utf8(a.bytes.lock().unwrap().clone()).unwrap(),
            expected
        );
        assert_eq!(*a.bytes.lock().unwrap(), *b.bytes.lock().unwrap());
    }

    #[test]
    fn a_full_buffer_drops_lines_instead_of_growing() {
        let sink = Captured::default();
        let (writer, flusher) =
            start(vec![Box::new(sink.clone())], Duration::from_secs(3600), 100).unwrap();
        for _ in 0..50 {
            append(&writer, "0123456789\n");
        }
        assert_eq!(writer.shared.lock().bytes.len(), 99, "nine whole lines");
        assert_eq!(writer.shared.lock().dropped_lines, 41);
        drop(flusher);
        assert_eq!(sink.bytes.lock().unwrap().len(), 99);
    }

    #[test]
    fn a_failing_sink_does_not_stop_the_others() {
        let good = Captured::default();
        let bad = Captured {
            failing: true,
            ..Captured::default()
        };
        let (writer, flusher) = start(
            vec![Box::new(bad), Box::new(good.clone())],
            Duration::from_millis(5),
            1 << 20,
        )
        .unwrap();
        for i in 0..100 {
            append(&writer, &format!("{i}\n"));
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(7));
            }
        }
        drop(flusher);
        let lines = good
            .bytes
            .lock()
            .unwrap()
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        assert_eq!(lines, 100);
    }
}
