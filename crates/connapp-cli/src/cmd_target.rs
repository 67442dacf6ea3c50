//! The consumer end of `plan` / `apply` for a terminal: what the consumer
//! platform wants (from its plugin, through the engine) and the consumer
//! half of a plan, printed. The work is `connapp_servicenow::consumer`'s.

use std::io::Write;

use connapp_core::App;
use connapp_engine::tokens::AppCtx;
use connapp_host::Registry;
pub(crate) use connapp_servicenow::consumer::{
    Consumer, Mode, TargetPlan, consent_link, consent_note, credentials_hint, has_token, run,
};

use crate::error::CliError;

/// Loads what the consumer needs, or `None` when the app has no target or the
/// store holds no instance credentials (then only the provider is planned).
pub(crate) fn consumer(reg: &Registry, c: &AppCtx<'_>) -> Result<Option<Consumer>, CliError> {
    Ok(connapp_servicenow::consumer::consumer(c, || {
        connapp_engine::platform::consumer_records(reg, c)
    })?)
}

/// Prints the consumer half of a plan.
pub(crate) fn print(out: &mut impl Write, app: &App, p: &TargetPlan) -> std::io::Result<()> {
    if !p.pending {
        return writeln!(out, "{}: ServiceNow {} has every record", app.name, p.instance);
    }
    writeln!(out, "{}: ServiceNow {}:", app.name, p.instance)?;
    for i in p.items.iter().filter(|i| i.action != "none") {
        let sign = match i.action {
            "create" => "+",
            "created-by-instance" => "+",
            "delete" => "-",
            _ => "~",
        };
        let by = if i.action == "created-by-instance" {
            " (ServiceNow creates it with the provider)"
        } else {
            ""
        };
        writeln!(out, "  {sign} {} {:?}{by}", i.table, i.label)?;
        if i.action == "update" {
            for (f, b, a) in &i.changes {
                writeln!(out, "      {f}: {b:?} -> {a:?}")?;
            }
        }
    }
    Ok(())
}
