//! connapp preset plugin `preset-servicenow`: the preset `servicenow-dex-zoom`,
//! the six granular Zoom scopes ServiceNow's DEX for Zoom needs, each with what
//! DEX uses it for and the API call that proves it works.
//!
//! What it is **not**: it does not talk to Zoom or ServiceNow; it is data.

use connapp_plugin_api::{
    Plugin, PluginInfo, PluginKind, Preset, PresetScope, Probe, Provided, export_plugin, plugin_info,
};

/// The preset's name.
pub const DEX_ZOOM: &str = "servicenow-dex-zoom";

fn probe(path: &str, query: &[(&str, &str)]) -> Probe {
    Probe {
        method: "GET".into(),
        path: path.into(),
        query: query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

fn scope(scope: &str, reason: &str, probe: Probe) -> PresetScope {
    PresetScope {
        scope: scope.into(),
        reason: reason.into(),
        probe,
    }
}

/// The `servicenow-dex-zoom` preset.
pub fn dex_zoom() -> Preset {
    Preset {
        name: DEX_ZOOM.into(),
        platform: "zoom".into(),
        description: "ServiceNow DEX for Zoom: meeting quality and Zoom Rooms health for the whole account".into(),
        scopes: vec![
            scope(
                "report:read:user:admin",
                "list each user's past meetings, the starting point of DEX's meeting-quality data",
                probe(
                    "/report/users/me/meetings",
                    &[("from", "{from}"), ("to", "{to}"), ("page_size", "30")],
                ),
            ),
            scope(
                "dashboard:read:list_meeting_participants_qos:admin",
                "read the quality of service (latency, jitter, loss) of every participant of a meeting",
                probe(
                    "/metrics/meetings/{meetingId}/participants/qos",
                    &[("type", "past"), ("page_size", "1")],
                ),
            ),
            scope(
                "dashboard:read:meeting_participant_qos:admin",
                "read one participant's detailed quality of service for a meeting",
                probe(
                    "/metrics/meetings/{meetingId}/participants/{participantId}/qos",
                    &[("type", "past")],
                ),
            ),
            scope(
                "dashboard:read:list_zoomrooms:admin",
                "list Zoom Rooms and their health status for DEX's room inventory",
                probe("/metrics/zoomrooms", &[("page_size", "30")]),
            ),
            scope(
                "dashboard:read:issues_zoomroom:admin",
                "read the top Zoom Rooms issues so DEX can raise room problems",
                probe("/metrics/zoomrooms/issues", &[("from", "{from}"), ("to", "{to}")]),
            ),
            scope(
                "user:read:user:admin",
                "resolve Zoom users to ServiceNow users (name, e-mail, department)",
                probe("/users/me", &[]),
            ),
        ],
    }
}

/// The plugin: provides the preset `servicenow-dex-zoom`.
pub struct ServicenowPresets;

impl Plugin for ServicenowPresets {
    fn info() -> PluginInfo {
        plugin_info![Provided::named(PluginKind::PRESET, DEX_ZOOM)]
    }

    fn presets() -> Vec<Preset> {
        vec![dex_zoom()]
    }
}

export_plugin!(ServicenowPresets);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_scopes_each_with_a_reason_and_probe() {
        let p = dex_zoom();
        assert_eq!(p.scopes.len(), 6);
        for s in &p.scopes {
            assert!(s.scope.ends_with(":admin"), "{}", s.scope);
            assert!(!s.reason.is_empty());
            assert!(s.probe.path.starts_with('/'));
        }
        let mut names: Vec<_> = p.scopes.iter().map(|s| s.scope.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 6);
    }

    #[test]
    fn the_preset_crosses_the_abi_intact() {
        let m = connapp_plugin_api::__private::module::<ServicenowPresets>();
        let got = connapp_plugin_api::host::presets(m).expect("presets");
        assert_eq!(got, vec![dex_zoom()]);
        let info = connapp_plugin_api::host::info(m).expect("info");
        assert_eq!(info.api_version, connapp_plugin_api::PLUGIN_API_VERSION);
    }
}
