//! Simulated Wiegand lines: every edge with its time, written to a text file after each frame
//! (`frame`, then `<line 0|1> <level 0|1> <nanoseconds from the frame's first edge>` per
//! edge), so a test in another process can decode the frames and check their timing.

use std::convert::Infallible;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use embedded_hal::digital::{ErrorType, OutputPin};

/// Edges recorded so far: (line, level, when).
pub type Edges = Arc<Mutex<Vec<(u8, bool, Instant)>>>;

/// One simulated data line.
#[derive(Clone, Debug)]
pub struct EdgePin {
    line: u8,
    edges: Edges,
}

impl EdgePin {
    /// DATA0 and DATA1 sharing one record.
    pub fn pair() -> (Self, Self, Edges) {
        let edges = Edges::default();
        (
            Self {
                line: 0,
                edges: edges.clone(),
            },
            Self {
                line: 1,
                edges: edges.clone(),
            },
            edges,
        )
    }

    fn push(&self, level: bool) {
        if let Ok(mut e) = self.edges.lock() {
            e.push((self.line, level, Instant::now()));
        }
    }
}

impl ErrorType for EdgePin {
    type Error = Infallible;
}

impl OutputPin for EdgePin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.push(false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        self.push(true);
        Ok(())
    }
}

/// Appends the edges recorded since the last call to `path` as one frame (the idle levels set
/// at start, before any pulse, are skipped).
pub fn write_frame(edges: &Edges, path: &Path) -> std::io::Result<()> {
    let taken: Vec<_> = std::mem::take(&mut *edges.lock().unwrap_or_else(|p| p.into_inner()));
    let Some(first) = taken.iter().position(|(_, level, _)| !level) else {
        return Ok(());
    };
    let t0 = taken[first].2;
    let mut text = String::from("frame\n");
    for (line, level, t) in &taken[first..] {
        text.push_str(&format!(
            "{line} {} {}\n",
            u8::from(*level),
            t.duration_since(t0).as_nanos()
        ));
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())
}
