//! Drawing `bpftime top` with ratatui: a title line, the interfaces (and queues) with
//! their rates, the selected interface's rx history as a sparkline, the programs.
//! Laid out to fit 80x24.

use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Row, Sparkline, Table};
use ratatui::Frame;

use super::model::Model;
use crate::names::human;

pub fn draw(f: &mut Frame<'_>, m: &Model, error: Option<&str>) {
    let [title, ifs, spark, progs] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(6),
        Constraint::Length(4),
        Constraint::Min(5),
    ])
    .areas(f.area());
    let st = m.status();
    let head = match (st, error) {
        (_, Some(e)) => format!("bpftime top — {e}"),
        (Some(s), None) => format!(
            "bpftime top  pid {}  {} interfaces  {} programs  sort {} (s)  q quits",
            s["pid"],
            m.interface_count(),
            s["programs"].as_array().map_or(0, |p| p.len()),
            m.sort.label()
        ),
        (None, None) => "bpftime top — waiting for the daemon".into(),
    };
    f.render_widget(
        Line::from(head).style(Style::new().add_modifier(Modifier::BOLD)),
        title,
    );

    let bold = Style::new().add_modifier(Modifier::BOLD);
    let header = Row::new(
        [
            "interface",
            "q",
            "mode",
            "rx/s",
            "drop/s",
            "pass/s",
            "tx/s",
            "redir/s",
            "cpu%",
            "exc",
            "kdrop",
            "pfail",
        ]
        .map(Cell::from),
    )
    .style(bold);
    let rows_data = m.interfaces();
    let selected_id = m.selected_row().map(|r| r.attachment);
    let rows: Vec<Row> = rows_data
        .iter()
        .map(|r| {
            let selected = r.queue.is_none() && Some(r.attachment) == selected_id;
            let name = match r.queue {
                None => r.ifname.clone(),
                Some(_) => String::new(),
            };
            let row = Row::new(vec![
                Cell::from(name),
                Cell::from(r.queue.map_or("*".into(), |q| q.to_string())),
                Cell::from(r.mode.clone()),
                Cell::from(human(r.rx_pps.round())),
                Cell::from(human(r.drop_pps.round())),
                Cell::from(human(r.pass_pps.round())),
                Cell::from(human(r.tx_pps.round())),
                Cell::from(human(r.redirect_pps.round())),
                Cell::from(format!("{:.0}", r.cpu * 100.0)),
                Cell::from(human(r.exceptions as f64)),
                Cell::from(human(r.kernel_drops as f64)),
                Cell::from(human(r.pass_failures as f64)),
            ]);
            if selected {
                row.style(Style::new().add_modifier(Modifier::REVERSED))
            } else {
                row
            }
        })
        .collect();
    let widths = [
        Constraint::Length(12),
        Constraint::Length(2),
        Constraint::Length(4),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(4),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(5),
    ];
    f.render_widget(
        Table::new(rows, widths).header(header).block(
            Block::new()
                .borders(Borders::TOP)
                .title("interfaces (per second; cpu% of a core; totals: exc, kdrop, pfail)"),
        ),
        ifs,
    );

    let (name, hist) = m.selected_history().unwrap_or_default();
    let peak = hist.iter().copied().max().unwrap_or(0);
    f.render_widget(
        Sparkline::default()
            .data(&hist)
            .block(Block::new().borders(Borders::TOP).title(format!(
                "{name} rx/s, last {}s (peak {})",
                hist.len(),
                human(peak as f64)
            ))),
        spark,
    );

    let header = Row::new(["id", "name", "type", "runs/s", "ns/run"].map(Cell::from)).style(bold);
    let rows: Vec<Row> = m
        .programs()
        .iter()
        .map(|p| {
            Row::new(vec![
                Cell::from(p.id.to_string()),
                Cell::from(p.name.clone()),
                Cell::from(p.type_name.clone()),
                Cell::from(human(p.runs_per_s.round())),
                Cell::from(p.ns_per_run.map_or("-".into(), |n| format!("{n:.1}"))),
            ])
        })
        .collect();
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(6),
                Constraint::Length(18),
                Constraint::Length(14),
                Constraint::Length(9),
                Constraint::Length(9),
            ],
        )
        .header(header)
        .block(
            Block::new()
                .borders(Borders::TOP)
                .title("programs (runs are counted while BPF_ENABLE_STATS is on)"),
        ),
        progs,
    );
}
