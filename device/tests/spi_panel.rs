//! The SPI panel path (mipidsi over embedded-hal), with recording doubles for the SPI device and
//! the data/command and reset lines: after initialisation, one screen is one window write
//! (column and row ranges, RAMWR) whose data is exactly the rendered screen in big-endian
//! RGB565, the same pixels as the golden images.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use embedded_graphics::pixelcolor::raw::ToBytes;
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{ErrorType as PinErrorType, OutputPin};
use embedded_hal::spi::{ErrorType, Operation, SpiDevice};
use facegate_device::framebuf::FrameBuf;
use facegate_device::hw::panel::tft_panel;
use facegate_device::ui::PanelModel;
use facegate_device::ui::{self, Screen};

/// One write on the wire: the data/command level and the bytes.
type Write = (bool, Vec<u8>);

/// What went over the wire.
#[derive(Clone, Default)]
struct Wire {
    writes: Arc<Mutex<Vec<Write>>>,
    dc: Arc<Mutex<bool>>,
}

struct Spi(Wire);
struct Dc(Wire);
struct Reset;
struct NoDelay;

impl ErrorType for Spi {
    type Error = Infallible;
}

impl SpiDevice for Spi {
    fn transaction(&mut self, ops: &mut [Operation<'_, u8>]) -> Result<(), Infallible> {
        let dc = *self.0.dc.lock().expect("dc");
        for op in ops {
            if let Operation::Write(bytes) = op {
                self.0
                    .writes
                    .lock()
                    .expect("writes")
                    .push((dc, bytes.to_vec()));
            }
        }
        Ok(())
    }
}

impl PinErrorType for Dc {
    type Error = Infallible;
}

impl OutputPin for Dc {
    fn set_low(&mut self) -> Result<(), Infallible> {
        *self.0.dc.lock().expect("dc") = false;
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        *self.0.dc.lock().expect("dc") = true;
        Ok(())
    }
}

impl PinErrorType for Reset {
    type Error = Infallible;
}

impl OutputPin for Reset {
    fn set_low(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

impl DelayNs for NoDelay {
    fn delay_ns(&mut self, _ns: u32) {}
}

/// Splits the recorded writes into (command, data bytes) pairs.
fn commands(writes: &[Write]) -> Vec<(u8, Vec<u8>)> {
    let mut out: Vec<(u8, Vec<u8>)> = Vec::new();
    for (dc, bytes) in writes {
        if *dc {
            if let Some(last) = out.last_mut() {
                last.1.extend_from_slice(bytes);
            }
        } else {
            for &b in bytes {
                out.push((b, Vec::new()));
            }
        }
    }
    out
}

#[test]
fn one_screen_is_one_window_write_of_the_rendered_pixels() {
    for (model, cols, rows) in [
        (PanelModel::St7789, 240u16, 240u16),
        (PanelModel::Ili9341, 320, 240),
    ] {
        let wire = Wire::default();
        let mut panel = tft_panel(
            model,
            Spi(wire.clone()),
            Dc(wire.clone()),
            Some(Reset),
            &mut NoDelay,
        )
        .expect("panel");
        let init = commands(&wire.writes.lock().expect("writes"));
        assert!(
            init.iter().any(|(c, _)| *c == 0x11),
            "no sleep-out in {init:x?}"
        );
        assert!(
            init.iter().any(|(c, _)| *c == 0x29),
            "no display-on in {init:x?}"
        );
        wire.writes.lock().expect("writes").clear();

        let screen = Screen::Welcome {
            name: "Adrian Dunbar".into(),
            score: 0.78,
            threshold: 0.5,
        };
        panel.show(&screen).expect("show");
        let sent = commands(&wire.writes.lock().expect("writes"));
        let ops: Vec<u8> = sent.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            ops,
            vec![0x2A, 0x2B, 0x2C],
            "{model:?}: one window, one write"
        );
        let be = |v: u16| v.to_be_bytes();
        assert_eq!(
            sent[0].1,
            [be(0), be(cols - 1)].concat(),
            "{model:?} columns"
        );
        assert_eq!(sent[1].1, [be(0), be(rows - 1)].concat(), "{model:?} rows");

        let mut frame = FrameBuf::new(model.size());
        ui::draw(&screen, &mut frame).expect("draw");
        let expected: Vec<u8> = frame
            .pixels()
            .iter()
            .flat_map(|p| p.to_be_bytes())
            .collect();
        assert_eq!(sent[2].1.len(), expected.len());
        assert!(
            sent[2].1 == expected,
            "{model:?}: pixels on the wire differ from the screen"
        );
    }
}
