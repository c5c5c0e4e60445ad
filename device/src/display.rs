//! The display runs on its own thread: the loop hands it the screen it wants and moves on.
//!
//! A full-screen SPI refresh takes tens of milliseconds and an I2C OLED more; the door loop must
//! never wait for it. [`Display::show`] replaces whatever screen is pending (only the newest
//! matters) and returns at once; the worker draws it when the panel is free. A panel error is
//! reported once per failure streak and the worker keeps trying with the next screen.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::ui::Screen;

/// Something that can show a screen: a real panel or the PNG simulator.
pub trait Panel {
    /// Draws `screen` and pushes it to the glass.
    fn show(&mut self, screen: &Screen) -> anyhow::Result<()>;
}

/// A panel that shows nothing (no display fitted).
#[derive(Debug, Default)]
pub struct NoPanel;

impl Panel for NoPanel {
    fn show(&mut self, _screen: &Screen) -> anyhow::Result<()> {
        Ok(())
    }
}

#[derive(Default)]
struct Slot {
    pending: Option<Screen>,
    closed: bool,
}

/// Handle to the display thread.
pub struct Display {
    slot: Arc<(Mutex<Slot>, Condvar)>,
    last: Option<Screen>,
    worker: Option<JoinHandle<()>>,
}

impl Display {
    /// Starts the worker. `open` builds the panel on the worker thread (panel drivers hold
    /// borrowed buffers and file handles that stay there); `on_error` hears about failures.
    pub fn spawn<F, E>(open: F, on_error: E) -> Self
    where
        F: FnOnce() -> anyhow::Result<Box<dyn Panel>> + Send + 'static,
        E: Fn(String) + Send + 'static,
    {
        let slot: Arc<(Mutex<Slot>, Condvar)> = Arc::default();
        let theirs = slot.clone();
        let worker = std::thread::Builder::new()
            .name("display".into())
            .spawn(move || worker(open, &theirs, &on_error))
            .ok();
        Self {
            slot,
            last: None,
            worker,
        }
    }

    /// Asks for `screen`; never blocks on the panel. Repeats of the current screen are ignored.
    pub fn show(&mut self, screen: Screen) {
        if self.last.as_ref() == Some(&screen) {
            return;
        }
        self.last = Some(screen.clone());
        let (lock, cv) = &*self.slot;
        lock.lock().unwrap_or_else(|p| p.into_inner()).pending = Some(screen);
        cv.notify_one();
    }

    /// The screen most recently asked for.
    pub fn current(&self) -> Option<&Screen> {
        self.last.as_ref()
    }

    /// Draws what is pending, then stops the worker.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let (lock, cv) = &*self.slot;
        lock.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        cv.notify_one();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn worker<F, E>(open: F, slot: &(Mutex<Slot>, Condvar), on_error: &E)
where
    F: FnOnce() -> anyhow::Result<Box<dyn Panel>>,
    E: Fn(String),
{
    let mut panel = match open() {
        Ok(p) => p,
        Err(e) => {
            on_error(format!("display unavailable: {e:#}"));
            Box::new(NoPanel)
        }
    };
    let mut failing = false;
    loop {
        let screen = {
            let (lock, cv) = slot;
            let mut s = lock.lock().unwrap_or_else(|p| p.into_inner());
            while s.pending.is_none() && !s.closed {
                s = cv.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            match s.pending.take() {
                Some(screen) => screen,
                None => return,
            }
        };
        match panel.show(&screen) {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                on_error(format!("display error: {e:#}"));
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A panel that takes a while per screen and reports what it drew.
    struct Slow(mpsc::Sender<Screen>);

    impl Panel for Slow {
        fn show(&mut self, screen: &Screen) -> anyhow::Result<()> {
            std::thread::sleep(Duration::from_millis(50));
            self.0.send(screen.clone())?;
            Ok(())
        }
    }

    #[test]
    fn a_slow_panel_never_blocks_and_only_the_newest_screen_is_drawn() {
        let (tx, rx) = mpsc::channel();
        let mut display = Display::spawn(move || Ok(Box::new(Slow(tx)) as Box<dyn Panel>), |_| {});
        let start = std::time::Instant::now();
        display.show(Screen::Idle);
        std::thread::sleep(Duration::from_millis(10));
        for v in 1..=20 {
            display.show(Screen::Updating { version: v });
        }
        // 21 requests returned long before one 50 ms draw could finish twice.
        assert!(start.elapsed() < Duration::from_millis(100));
        display.close();
        let drawn: Vec<Screen> = rx.try_iter().collect();
        assert_eq!(drawn.first(), Some(&Screen::Idle));
        assert_eq!(drawn.last(), Some(&Screen::Updating { version: 20 }));
        assert!(drawn.len() <= 3, "stale screens drawn: {drawn:?}");
    }

    #[test]
    fn a_failing_panel_is_reported_once_per_streak() {
        struct Broken;
        impl Panel for Broken {
            fn show(&mut self, _: &Screen) -> anyhow::Result<()> {
                anyhow::bail!("SPI write failed")
            }
        }
        let errors = Arc::new(Mutex::new(Vec::new()));
        let seen = errors.clone();
        let mut display = Display::spawn(
            || Ok(Box::new(Broken) as Box<dyn Panel>),
            move |e| seen.lock().expect("errors").push(e),
        );
        for s in [Screen::Idle, Screen::Looking, Screen::NotRecognised] {
            display.show(s);
            std::thread::sleep(Duration::from_millis(20));
        }
        display.close();
        let errors = errors.lock().expect("errors");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("SPI write failed"));
    }
}
