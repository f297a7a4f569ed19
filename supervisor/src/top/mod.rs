//! `bpftime top`: a live view of the daemon, refreshed every second — per interface
//! and queue the packets per second by verdict, exceptions, kernel ring drops and PASS
//! failures; per program its runs per second and time per run; a sparkline of the
//! selected interface's rx rate.
//!
//! - [`model`]: rates and history from successive `status` replies (no terminal).
//! - [`view`]: the ratatui layout (fits 80x24).
//!
//! Keys: `q`/Esc/Ctrl-C quit, `s` cycles the sort column, ↑/↓ select the interface
//! whose history is shown. The terminal is restored on every exit path.

pub mod model;
pub mod view;

use std::path::Path;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use crate::proto::{self, Request};

/// Runs the view until the user quits.
pub fn run(socket: &Path) -> anyhow::Result<()> {
    let mut term = ratatui::init();
    let r = run_loop(&mut term, socket);
    ratatui::restore();
    r
}

fn run_loop(term: &mut ratatui::DefaultTerminal, socket: &Path) -> anyhow::Result<()> {
    let mut m = model::Model::default();
    let mut error: Option<String> = None;
    let mut next = Instant::now();
    loop {
        if Instant::now() >= next {
            match proto::request(socket, &Request::Status) {
                Ok(v) => {
                    m.update(v, Instant::now());
                    error = None;
                }
                Err(e) => error = Some(format!("no daemon on {}: {e}", socket.display())),
            }
            next += Duration::from_secs(1);
            if next < Instant::now() {
                next = Instant::now() + Duration::from_secs(1);
            }
        }
        term.draw(|f| view::draw(f, &m, error.as_deref()))?;
        let wait = next.saturating_duration_since(Instant::now());
        if event::poll(wait)? {
            if let Event::Key(k) = event::read()? {
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                match k.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                        return Ok(())
                    }
                    KeyCode::Char('s') => m.sort = m.sort.next(),
                    KeyCode::Up => m.selected = m.selected.saturating_sub(1),
                    KeyCode::Down => {
                        m.selected = (m.selected + 1).min(m.interface_count().saturating_sub(1))
                    }
                    _ => {}
                }
            }
        }
    }
}
