//! Golden-image tests: every screen on every panel, rendered exactly as the simulated panel
//! writes it, must match the PNG in `tests/golden/`. After a deliberate UI change, regenerate
//! with `FACEGATE_UPDATE_GOLDEN=1 cargo test --release -p facegate-device --test screens` and
//! look at the new pictures before committing them.

use std::path::PathBuf;

use facegate_device::sim::panel::render;
use facegate_device::ui::PanelModel;
use facegate_device::ui::Screen;

fn screens() -> Vec<Screen> {
    vec![
        Screen::Idle,
        Screen::Looking,
        Screen::Welcome {
            name: "Adrian Dunbar".into(),
            score: 0.78,
            threshold: 0.5,
        },
        Screen::NotRecognised,
        Screen::NotLive,
        Screen::Updating { version: 7 },
        Screen::Error {
            message: "camera lost: /dev/video0 cannot be opened; retrying in 4.0 s".into(),
        },
    ]
}

#[test]
fn every_screen_matches_its_golden_image_on_every_panel() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("FACEGATE_UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for model in [PanelModel::St7789, PanelModel::Ili9341, PanelModel::Ssd1306] {
        for screen in screens() {
            let name = format!("{}-{}.png", model.as_str(), screen.kind());
            let path = dir.join(&name);
            let actual = render(&screen, model);
            assert_eq!(
                (actual.width(), actual.height()),
                (model.size().width, model.size().height)
            );
            if update {
                actual.save(&path).expect("write golden");
                continue;
            }
            let golden = image::open(&path)
                .unwrap_or_else(|e| {
                    panic!(
                        "{}: {e}; generate it with FACEGATE_UPDATE_GOLDEN=1",
                        path.display()
                    )
                })
                .to_rgb8();
            if golden != actual {
                let out = std::env::temp_dir().join(format!("facegate-actual-{name}"));
                actual.save(&out).expect("write actual");
                failures.push(format!("{name} differs (actual: {})", out.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn screens_are_distinguishable_and_text_stays_on_the_panel() {
    for model in [PanelModel::St7789, PanelModel::Ili9341, PanelModel::Ssd1306] {
        let images: Vec<_> = screens().iter().map(|s| render(s, model)).collect();
        for (i, a) in images.iter().enumerate() {
            for b in &images[i + 1..] {
                assert_ne!(a, b, "two screens look the same on {}", model.as_str());
            }
            // Something is drawn in light pixels (text) on every screen.
            let light = a.pixels().filter(|p| p.0.iter().all(|&c| c > 200)).count();
            assert!(light > 50, "{}: screen {i} has no text", model.as_str());
        }
    }
}
