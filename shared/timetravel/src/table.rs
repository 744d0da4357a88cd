//! Plain-text tables with Vietnamese headers and labels, for `projector replay --format table`.

use chrono::{DateTime, NaiveDate, Utc};
use remediation_domain::Assignee;
use remediation_domain::calendar::vietnam;
use remediation_domain::item::AssignmentRole;
use remediation_domain::text::UnitId;
use serde_json::Value;

use crate::diff::{Change, PlanDiff};
use crate::view::{ItemRow, ItemView, PlanView, TaskRow, UnitView};
use crate::{Axis, LogInfo};

/// Columns padded to their widest cell (in characters: the text is NFC Vietnamese).
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: &[&str]) -> Self {
        Self {
            rows: vec![headers.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for (i, row) in self.rows.iter().enumerate() {
            let line: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(c, cell)| {
                    let pad = widths[c].saturating_sub(cell.chars().count());
                    format!("{cell}{}", " ".repeat(pad))
                })
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
            if i == 0 {
                let rule: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
                out.push_str(&rule.join("  "));
                out.push('\n');
            }
        }
        out
    }
}

fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&vietnam())
        .format("%Y-%m-%d %H:%M:%S%:z")
        .to_string()
}

fn date(d: Option<NaiveDate>) -> String {
    d.map_or_else(|| "—".to_owned(), |d| d.format("%d/%m/%Y").to_string())
}

fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

fn units(units: &[UnitId]) -> String {
    if units.is_empty() {
        "—".to_owned()
    } else {
        units
            .iter()
            .map(UnitId::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Those responsible as the plan names them (a group stays one name), with how many units that
/// makes at T when it is more.
fn assignees(named: &[Assignee], units: &[UnitId]) -> String {
    if named.is_empty() {
        return "—".to_owned();
    }
    let names: Vec<String> = named
        .iter()
        .map(|a| match a {
            Assignee::Unit(u) => u.to_string(),
            Assignee::Group(g) => format!("nhóm {g}"),
        })
        .collect();
    let mut text = names.join(", ");
    if units.len() > named.len() {
        text.push_str(&format!(" ({} đơn vị)", units.len()));
    }
    text
}

fn heading(what: &str, as_of: DateTime<Utc>, axis: Axis, log: &LogInfo) -> String {
    format!(
        "{what} tại {} ({}) — {} sự kiện đến số thứ tự {}\n\n",
        local(as_of),
        axis.label_vi(),
        log.events_folded,
        log.head_sequence
    )
}

fn item_table(items: &[(Option<AssignmentRole>, &ItemRow)]) -> String {
    let with_role = items.iter().any(|(r, _)| r.is_some());
    let mut headers = vec!["STT"];
    if with_role {
        headers.push("Vai trò");
    }
    headers.extend([
        "Nội dung",
        "Trạng thái",
        "Hạn hoàn thành",
        "Tình trạng hạn",
        "Đơn vị chủ trì",
        "Đơn vị phối hợp",
    ]);
    let mut table = Table::new(&headers);
    for (role, item) in items {
        let mut cells = vec![item.ordinal.to_string()];
        if with_role {
            cells.push(
                match role {
                    Some(AssignmentRole::Lead) => "chủ trì",
                    Some(AssignmentRole::Coordinator) => "phối hợp",
                    None => "",
                }
                .to_owned(),
            );
        }
        cells.extend([
            short(&item.title, 60),
            item.status_label.clone(),
            date(item.due_on),
            item.deadline_label.clone(),
            assignees(&item.lead_assignees, &item.leads),
            assignees(&item.coordinator_assignees, &item.coordinators),
        ]);
        table.row(cells);
    }
    table.render()
}

fn task_table(tasks: &[TaskRow]) -> String {
    let mut table = Table::new(&[
        "Nhiệm vụ",
        "Đơn vị",
        "Nội dung",
        "Trạng thái",
        "Thời hạn",
        "Tình trạng hạn",
    ]);
    for task in tasks {
        let status = if task.cancelled {
            format!("{} (đã hủy)", task.status_label)
        } else {
            task.status_label.clone()
        };
        table.row(vec![
            task.task_id.to_string(),
            task.unit_id.to_string(),
            short(&task.title, 50),
            status,
            date(Some(task.due_on)),
            task.deadline_label.clone(),
        ]);
    }
    table.render()
}

/// One line per item.
pub fn plan(view: &PlanView) -> String {
    let mut out = heading("Kế hoạch", view.as_of, view.axis, &view.log);
    let items: Vec<_> = view.items.iter().map(|i| (None, i)).collect();
    out.push_str(&item_table(&items));
    out.push_str(&format!(
        "\n{} nhiệm vụ, {} báo cáo quý, {} phân công còn hiệu lực\n",
        view.tasks.len(),
        view.reports.len(),
        view.assignments.len()
    ));
    out
}

/// The item's line, its assignments and its tasks.
pub fn item(view: &ItemView) -> String {
    let mut out = heading(
        &format!("Nội dung {}", view.item.item_id),
        view.as_of,
        view.axis,
        &view.log,
    );
    out.push_str(&item_table(&[(None, &view.item)]));
    out.push('\n');
    let mut table = Table::new(&["Vai trò", "Được giao", "Từ", "Đến", "Hiệu lực", "Đơn vị"]);
    for a in &view.assignments {
        table.row(vec![
            match a.role {
                AssignmentRole::Lead => "chủ trì",
                AssignmentRole::Coordinator => "phối hợp",
            }
            .to_owned(),
            assignees(std::slice::from_ref(&a.assignee), &[]),
            local(a.valid_from),
            a.valid_until.map_or_else(|| "—".to_owned(), local),
            if a.valid_at { "còn" } else { "hết" }.to_owned(),
            units(&a.units),
        ]);
    }
    out.push_str(&table.render());
    if !view.tasks.is_empty() {
        out.push('\n');
        out.push_str(&task_table(&view.tasks));
    }
    out
}

/// The unit, its items (with its role), its tasks and its reporting compliance.
pub fn unit(view: &UnitView) -> String {
    let mut out = heading(
        &format!("Đơn vị {} ({})", view.unit.name, view.unit.unit_id),
        view.as_of,
        view.axis,
        &view.log,
    );
    if view.unit.succeeded {
        out.push_str(&format!(
            "Đã sáp nhập / giải thể; trách nhiệm chuyển cho: {}\n\n",
            units(&view.unit.holders)
        ));
    }
    let items: Vec<_> = view.items.iter().map(|i| (Some(i.role), &i.item)).collect();
    out.push_str(&item_table(&items));
    if !view.tasks.is_empty() {
        out.push('\n');
        out.push_str(&task_table(&view.tasks));
    }
    if !view.compliance.is_empty() {
        out.push('\n');
        let mut table = Table::new(&["Quý", "Hạn nộp", "Nộp lần đầu", "Tình trạng"]);
        for c in &view.compliance {
            table.row(vec![
                c.quarter.label(),
                local(c.due_at),
                c.first_submitted_at.map_or_else(|| "—".to_owned(), local),
                c.compliance.label_vi().to_owned(),
            ]);
        }
        out.push_str(&table.render());
    }
    out
}

fn value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".to_owned(),
        other => other.to_string(),
    }
}

/// The changes, then the events between the two instants.
pub fn diff(d: &PlanDiff) -> String {
    let mut out = format!(
        "Thay đổi từ {} đến {} ({})\n\n",
        local(d.from),
        local(d.to),
        d.axis.label_vi()
    );
    let mut table = Table::new(&["Đối tượng", "Mã", "Thay đổi", "Trước", "Sau"]);
    for change in &d.changes {
        let entity = |e: &crate::Entity| value(&serde_json::to_value(e).unwrap_or(Value::Null));
        match change {
            Change::Added { entity: e, key, .. } => {
                table.row(vec![
                    entity(e),
                    key.clone(),
                    "thêm".to_owned(),
                    "—".to_owned(),
                    "✓".to_owned(),
                ]);
            }
            Change::Removed { entity: e, key, .. } => {
                table.row(vec![
                    entity(e),
                    key.clone(),
                    "bỏ".to_owned(),
                    "✓".to_owned(),
                    "—".to_owned(),
                ]);
            }
            Change::Changed {
                entity: e,
                key,
                field,
                before,
                after,
            } => {
                table.row(vec![
                    entity(e),
                    key.clone(),
                    field.clone(),
                    short(&value(before), 40),
                    short(&value(after), 40),
                ]);
            }
        }
    }
    out.push_str(&table.render());
    out.push_str(&format!("\n{} sự kiện trong khoảng", d.events_total));
    if (d.events.len() as u64) < d.events_total {
        out.push_str(&format!(" (hiển thị {})", d.events.len()));
    }
    out.push_str(":\n\n");
    let mut events = Table::new(&[
        "Số TT",
        "Ghi nhận",
        "Hiệu lực",
        "Người thực hiện",
        "Vai trò",
        "Lệnh",
        "Đối tượng",
    ]);
    for e in &d.events {
        events.row(vec![
            format!("{}.{}", e.stream_sequence, e.position),
            local(e.recorded_at),
            local(e.effective_at),
            match &e.actor_unit {
                Some(unit) => format!("{} ({unit})", e.actor_user),
                None => e.actor_user.clone(),
            },
            e.actor_role.clone(),
            e.command_name.clone(),
            format!("{}/{}", e.aggregate_type, e.aggregate_id),
        ]);
    }
    out.push_str(&events.render());
    out
}
