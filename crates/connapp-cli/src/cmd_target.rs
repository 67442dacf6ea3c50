//! The consumer half of a plan, printed (the work is
//! `connapp_clients::apply`'s, through `connapp_servicenow::consumer`).

use connapp_clients::apply::RecordAction;
use std::io::Write;

pub(crate) use connapp_clients::apply::TargetPlan;
use connapp_core::App;

/// Prints the consumer half of a plan.
pub(crate) fn print(out: &mut impl Write, app: &App, p: &TargetPlan) -> std::io::Result<()> {
    if !p.pending {
        return writeln!(out, "{}: {} {} has every record", app.name, p.consumer, p.instance);
    }
    writeln!(out, "{}: {} {}:", app.name, p.consumer, p.instance)?;
    for i in p.items.iter().filter(|i| i.action != RecordAction::None) {
        let sign = match i.action {
            RecordAction::Create | RecordAction::CreatedByInstance => "+",
            RecordAction::Delete => "-",
            RecordAction::Update | RecordAction::None => "~",
        };
        let by = if i.action == RecordAction::CreatedByInstance {
            format!(" ({} creates it with the provider)", p.consumer)
        } else {
            String::new()
        };
        let line = format!("{sign} {} {:?}{by}", i.table, i.label);
        writeln!(out, "  {}", crate::render::diff_line(&line, crate::render::WIDTH - 2))?;
        if i.action == RecordAction::Update {
            for (f, b, a) in &i.changes {
                let line = crate::render::fit(&format!("{f}: {b:?} -> {a:?}"), crate::render::WIDTH - 6);
                writeln!(out, "      {line}")?;
            }
        }
    }
    Ok(())
}
