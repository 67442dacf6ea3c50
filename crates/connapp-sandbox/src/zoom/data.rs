//! Seeded, realistic API data: past meetings with participants and QoS
//! samples (values as unit strings, as Zoom sends them), Zoom Rooms and their
//! issues. Deterministic for a given start time.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A tiny deterministic generator (splitmix64), so seeded data is stable.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// A Zoom-style 22-character id.
    pub fn zoom_id(&mut self) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        (0..22).map(|_| A[self.below(64) as usize] as char).collect()
    }
}

/// A participant of a past meeting.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Participant {
    /// Participant id (as used in the QoS path).
    pub id: String,
    /// Zoom user id, if a user of the account.
    pub user_id: String,
    /// Name.
    pub user_name: String,
    /// Device.
    pub device: String,
    /// IP address.
    pub ip_address: String,
    /// Location.
    pub location: String,
    /// Client version.
    pub version: String,
    /// Join time (unix seconds).
    pub join_time: u64,
    /// Leave time (unix seconds).
    pub leave_time: u64,
    /// QoS samples: (time, latency ms, jitter ms, loss permille, bitrate kbps, cpu %).
    pub qos: Vec<(u64, u32, u32, u32, u32, u32)>,
}

/// A past meeting.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meeting {
    /// Instance UUID.
    pub uuid: String,
    /// Numeric id.
    pub id: u64,
    /// Topic.
    pub topic: String,
    /// Host user id.
    pub host_id: String,
    /// Start (unix seconds).
    pub start_time: u64,
    /// Duration in minutes.
    pub duration: u64,
    /// Participants.
    pub participants: Vec<Participant>,
}

/// A Zoom Room.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Room {
    /// Room id.
    pub id: String,
    /// Name.
    pub room_name: String,
    /// Status (Available, In Meeting, Offline).
    pub status: String,
    /// Health (healthy, warning, critical).
    pub health: String,
    /// Location.
    pub location: String,
    /// Issue events: (issue name, time).
    pub issues: Vec<(String, u64)>,
}

/// All seeded data.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Data {
    /// Past meetings, newest first.
    pub meetings: Vec<Meeting>,
    /// Zoom Rooms.
    pub rooms: Vec<Room>,
}

const TOPICS: &[&str] = &[
    "Weekly IT sync",
    "Service desk stand-up",
    "Change advisory board",
    "Quarterly business review",
    "Onboarding: new hires",
    "Incident review",
    "Vendor call",
];
const DEVICES: &[&str] = &["Windows", "Mac", "iOS", "Android", "Zoom Rooms"];
const LOCATIONS: &[&str] = &[
    "Amsterdam (NL)",
    "Dublin (IE)",
    "San Jose (US)",
    "Sydney (AU)",
    "Pune (IN)",
];
const ROOM_ISSUES: &[&str] = &[
    "Zoom room is offline",
    "Room controller disconnected",
    "Selected camera has disconnected",
    "Selected microphone has disconnected",
    "High CPU usage detected",
];

/// Builds the seeded data for users `(id, name)` around `now`.
pub fn seed(now: u64, users: &[(String, String)]) -> Data {
    let mut rng = Rng::new(0x00C0_FFEE);
    let day = 86_400;
    let mut meetings = Vec::new();
    for d in 1..=40u64 {
        for k in 0..2u64 {
            let host = &users[rng.below(users.len() as u64) as usize];
            let start = now - d * day + 9 * 3600 + k * 3 * 3600 + rng.below(1800);
            let duration = 20 + rng.below(50);
            let mut uuid_bytes = [0u8; 16];
            for b in uuid_bytes.iter_mut() {
                *b = rng.below(256) as u8;
            }
            // The first meeting's UUID starts with '/', which callers must double-encode.
            if d == 1 && k == 0 {
                uuid_bytes[0] = 0xfc;
            }
            let uuid = base64::engine::general_purpose::STANDARD.encode(uuid_bytes);
            let n = 2 + rng.below(4) as usize;
            let mut participants = Vec::new();
            for p in 0..n {
                let (uid, name) = &users[(rng.below(users.len() as u64) as usize + p) % users.len()];
                let join = start + rng.below(120);
                let leave = start + duration * 60 - rng.below(120);
                let qos = (0..3)
                    .map(|i| {
                        (
                            join + i * 60,
                            40 + rng.below(160) as u32,
                            1 + rng.below(30) as u32,
                            rng.below(40) as u32,
                            20 + rng.below(1500) as u32,
                            5 + rng.below(60) as u32,
                        )
                    })
                    .collect();
                participants.push(Participant {
                    id: format!("{}{}", &uid[..8], p),
                    user_id: uid.clone(),
                    user_name: name.clone(),
                    device: DEVICES[rng.below(DEVICES.len() as u64) as usize].into(),
                    ip_address: format!("198.51.100.{}", 10 + rng.below(200)),
                    location: LOCATIONS[rng.below(LOCATIONS.len() as u64) as usize].into(),
                    version: format!("6.{}.{}", rng.below(4), rng.below(20)),
                    join_time: join,
                    leave_time: leave,
                    qos,
                });
            }
            meetings.push(Meeting {
                uuid,
                id: 80_000_000_000 + rng.below(9_999_999_999),
                topic: TOPICS[rng.below(TOPICS.len() as u64) as usize].into(),
                host_id: host.0.clone(),
                start_time: start,
                duration,
                participants,
            });
        }
    }
    let names = [
        "Boardroom",
        "Huddle 1",
        "Huddle 2",
        "Training Room",
        "Exec Suite",
        "Lobby Kiosk",
    ];
    let rooms = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let issues: Vec<(String, u64)> = (0..(i as u64 % 4) * 3)
                .map(|_| {
                    (
                        ROOM_ISSUES[rng.below(ROOM_ISSUES.len() as u64) as usize].to_string(),
                        now - rng.below(20) * day - rng.below(day),
                    )
                })
                .collect();
            let health = match issues.len() {
                0 => "healthy",
                1..=3 => "warning",
                _ => "critical",
            };
            Room {
                id: rng.zoom_id(),
                room_name: (*name).into(),
                status: if i == 4 { "Offline".into() } else { "Available".into() },
                health: health.into(),
                location: LOCATIONS[i % LOCATIONS.len()].into(),
                issues,
            }
        })
        .collect();
    Data { meetings, rooms }
}

/// ISO-8601 UTC (`2026-11-28T10:00:00Z`).
pub fn iso(t: u64) -> String {
    chrono::DateTime::from_timestamp(t as i64, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// A QoS sample as Zoom sends it: values are strings with units.
pub fn qos_json(s: &(u64, u32, u32, u32, u32, u32)) -> Value {
    let (t, latency, jitter, loss, bitrate, cpu) = *s;
    let stream = |br: u32| {
        json!({
            "bitrate": format!("{br} kbps"),
            "latency": format!("{latency} ms"),
            "jitter": format!("{jitter} ms"),
            "avg_loss": format!("{}.{}%", loss / 10, loss % 10),
            "max_loss": format!("{}.{}%", (loss * 3) / 10, (loss * 3) % 10),
        })
    };
    json!({
        "date_time": iso(t),
        "audio_input": stream(bitrate / 20 + 20),
        "audio_output": stream(bitrate / 20 + 22),
        "video_input": {
            "bitrate": format!("{bitrate} kbps"),
            "latency": format!("{latency} ms"),
            "jitter": format!("{jitter} ms"),
            "avg_loss": format!("{}.{}%", loss / 10, loss % 10),
            "max_loss": format!("{}.{}%", (loss * 3) / 10, (loss * 3) % 10),
            "resolution": "1280*720",
            "frame_rate": format!("{} fps", 12 + latency % 18),
        },
        "video_output": stream(bitrate),
        "as_input": stream(0),
        "as_output": stream(0),
        "cpu_usage": {
            "zoom_min_cpu_usage": format!("{}%", cpu / 2),
            "zoom_avg_cpu_usage": format!("{cpu}%"),
            "zoom_max_cpu_usage": format!("{}%", (cpu * 3 / 2).min(100)),
            "system_max_cpu_usage": format!("{}%", (cpu * 2).min(100)),
        },
        "wifi_rssi": { "max_rssi": "-45 dBm", "avg_rssi": "-52 dBm", "min_rssi": "-63 dBm", "rssi_unit": "dBm" }
    })
}

/// A participant object as the QoS endpoints return it.
pub fn participant_json(p: &Participant, with_qos: bool) -> Value {
    let mut v = json!({
        "id": p.id,
        "user_id": p.user_id,
        "user_name": p.user_name,
        "device": p.device,
        "client": "win",
        "domain": "sandbox.example",
        "harddisk_id": "",
        "internal_ip_addresses": ["10.0.0.12"],
        "ip_address": p.ip_address,
        "join_time": iso(p.join_time),
        "leave_time": iso(p.leave_time),
        "location": p.location,
        "mac_addr": "",
        "pc_name": format!("{}-PC", p.user_name.split(' ').next().unwrap_or("USER")),
        "version": p.version,
    });
    if with_qos {
        v["user_qos"] = Value::Array(p.qos.iter().map(qos_json).collect());
    }
    v
}
