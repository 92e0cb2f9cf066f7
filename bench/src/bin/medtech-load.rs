//! `medtech-load`: the MQTT load generator behind `bench/medtech.sh`.
//!
//! Three subcommands, one JSON line on stdout each (progress goes to stderr):
//!
//! - `publish`: `--messages` device messages over `--connections` MQTT 5 connections (QoS 1),
//!   as fast as the broker acknowledges them or paced at `--rate` messages/s, to
//!   `devices/{device}/messages/events`. Message `k` belongs to device `k % devices`.
//!   - `heartrate`: `{"heartRate": .., "patientId": ..}` with the MQTT 5 user property
//!     `iothub-creation-time-utc` = `--hour` + (k / devices) mod 3600 seconds, so each device's
//!     points fall on distinct seconds of one hour (one hourly SampledData Observation each).
//!   - `spo2`: `{"deviceId", "patientId", "readings": [{"type": "spo2", "value", "ts"}]}` with
//!     `ts` = the send time in Unix ms (kept strictly increasing per device).
//!
//!   Reports the start (first publish) and end (last PUBACK) in Unix ms and, for heartrate, the
//!   number of distinct (device, second) pairs sent.
//! - `subscribe`: one MQTT 5 subscriber (QoS 1) that counts messages until `--messages` have
//!   arrived, or until nothing arrived for `--idle-exit` seconds. `--hold-acks` never
//!   acknowledges, which with `--receive-maximum` shows whether the broker honours it.
//! - `wait`: polls a Prometheus endpoint until a counter (summed over the series matching
//!   `--label`) reaches `--target`; reports when it did, or where it stalled.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::json;

#[derive(Parser)]
#[command(about = "MQTT load generator for the MedTech benchmark; prints one JSON line")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    Heartrate,
    Spo2,
}

#[derive(Subcommand)]
enum Cmd {
    Publish {
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = 1883)]
        port: u16,
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long)]
        messages: u64,
        #[arg(long, default_value_t = 200)]
        devices: u64,
        #[arg(long, default_value_t = 4)]
        connections: u64,
        /// Messages/s over all connections; 0 = as fast as possible.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Unacknowledged publishes per connection.
        #[arg(long, default_value_t = 1000)]
        inflight: u16,
        /// heartrate: the hour the points fall in.
        #[arg(long, default_value = "2025-01-01T00:00:00Z")]
        hour: DateTime<Utc>,
        /// Device ids are `{prefix}{n:05}`.
        #[arg(long, default_value = "dev-")]
        device_prefix: String,
        #[arg(long, default_value = "")]
        label: String,
    },
    Subscribe {
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = 1883)]
        port: u16,
        #[arg(long, default_value = "devices/+/messages/events")]
        topic: String,
        #[arg(long)]
        messages: u64,
        #[arg(long)]
        receive_maximum: Option<u16>,
        #[arg(long)]
        hold_acks: bool,
        /// Give up after this many seconds without a message.
        #[arg(long, default_value_t = 30.0)]
        idle_exit: f64,
        /// Written once the subscription is acknowledged.
        #[arg(long)]
        ready_file: Option<std::path::PathBuf>,
    },
    Wait {
        /// e.g. http://127.0.0.1:18480/metrics
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "CompletedEvent")]
        metric: String,
        /// A substring every counted series must hold, e.g. service="vitals".
        #[arg(long, default_value = "")]
        label: String,
        #[arg(long)]
        target: f64,
        /// Give up after this many seconds without progress.
        #[arg(long, default_value_t = 60.0)]
        stall: f64,
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
    },
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn options(id: String, host: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(id, host, port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_clean_start(true)
        .set_max_packet_size(Some(1 << 20));
    o
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Publish {
            host,
            port,
            kind,
            messages,
            devices,
            connections,
            rate,
            inflight,
            hour,
            device_prefix,
            label,
        } => {
            publish(Publish {
                host,
                port,
                kind,
                messages,
                devices: devices.max(1),
                connections: connections.max(1),
                rate,
                inflight,
                hour,
                prefix: device_prefix,
                label,
            })
            .await
        }
        Cmd::Subscribe {
            host,
            port,
            topic,
            messages,
            receive_maximum,
            hold_acks,
            idle_exit,
            ready_file,
        } => {
            subscribe(
                host,
                port,
                topic,
                messages,
                receive_maximum,
                hold_acks,
                idle_exit,
                ready_file,
            )
            .await
        }
        Cmd::Wait {
            url,
            metric,
            label,
            target,
            stall,
            interval_ms,
        } => wait(url, metric, label, target, stall, interval_ms).await,
    }
}

struct Publish {
    host: String,
    port: u16,
    kind: Kind,
    messages: u64,
    devices: u64,
    connections: u64,
    rate: f64,
    inflight: u16,
    hour: DateTime<Utc>,
    prefix: String,
    label: String,
}

async fn publish(p: Publish) -> anyhow::Result<()> {
    let p = Arc::new(p);
    let acked = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let pid = std::process::id();
    let mut clients = Vec::new();
    for c in 0..p.connections {
        let mut o = options(format!("medtech-load-{pid}-{c}"), &p.host, p.port);
        o.set_outgoing_inflight_upper_limit(p.inflight)
            .set_request_channel_capacity(usize::from(p.inflight) * 2);
        let (client, mut eventloop) = AsyncClient::new(o, usize::from(p.inflight) * 2);
        let acked = acked.clone();
        // Wait for the CONNACK so the clock does not include connecting.
        loop {
            match eventloop.poll().await.context("connecting to the broker")? {
                Event::Incoming(Packet::ConnAck(_)) => break,
                _ => continue,
            }
        }
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("[medtech-load] connection {c}: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        clients.push(client);
    }

    let start_ms = now_ms();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().cloned().enumerate() {
        let p = p.clone();
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            // Per-device last ts (spo2), for this connection's devices only: k % C == c and
            // device = k % D, so when C divides D each device stays on one connection.
            let mut last_ts: HashMap<u64, u64> = HashMap::new();
            let mut k = c as u64;
            while k < p.messages {
                if p.rate > 0.0 {
                    let due = t0 + Duration::from_secs_f64(k as f64 / p.rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let device = k % p.devices;
                let name = format!("{}{device:05}", p.prefix);
                let topic = format!("devices/{name}/messages/events");
                let (payload, props) = match p.kind {
                    Kind::Heartrate => {
                        let second = (k / p.devices) % 3600;
                        let at = p.hour + chrono::Duration::seconds(second as i64);
                        let body =
                            json!({"heartRate": 60 + (k % 40), "patientId": format!("pat-{name}")});
                        let props = PublishProperties {
                            user_properties: vec![(
                                "iothub-creation-time-utc".into(),
                                at.to_rfc3339_opts(SecondsFormat::Secs, true),
                            )],
                            content_type: Some("application/json".into()),
                            ..Default::default()
                        };
                        (body, props)
                    }
                    Kind::Spo2 => {
                        let mut ts = now_ms();
                        let last = last_ts.entry(device).or_insert(0);
                        if ts <= *last {
                            ts = *last + 1;
                        }
                        *last = ts;
                        let body = json!({
                            "deviceId": name,
                            "patientId": format!("pat-{name}"),
                            "readings": [{"type": "spo2", "value": 90 + (k % 10), "ts": ts}],
                        });
                        let props = PublishProperties {
                            content_type: Some("application/json".into()),
                            ..Default::default()
                        };
                        (body, props)
                    }
                };
                let bytes = serde_json::to_vec(&payload).expect("JSON");
                client
                    .publish_with_properties(topic, QoS::AtLeastOnce, false, bytes, props)
                    .await
                    .context("publish")?;
                sent.fetch_add(1, Ordering::Relaxed);
                k += p.connections;
            }
            anyhow::Ok(())
        }));
    }
    let mut last_report = Instant::now();
    let mut enqueued_ms = None;
    loop {
        let a = acked.load(Ordering::Relaxed);
        if enqueued_ms.is_none() && sent.load(Ordering::Relaxed) >= p.messages {
            enqueued_ms = Some(now_ms());
        }
        if a >= p.messages {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "[medtech-load] {}: {} sent, {a} acknowledged after {:.1} s",
                p.label,
                sent.load(Ordering::Relaxed),
                t0.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let end_ms = now_ms();
    for t in tasks {
        t.await??;
    }
    let seconds = (end_ms - start_ms) as f64 / 1000.0;
    // heartrate: device d gets ceil((N - d) / D) messages on seconds 0, 1, ... (mod 3600).
    let distinct_pairs: u64 = match p.kind {
        Kind::Heartrate => (0..p.devices.min(p.messages))
            .map(|d| (p.messages - d).div_ceil(p.devices).min(3600))
            .sum(),
        Kind::Spo2 => p.messages,
    };
    println!(
        "{}",
        json!({
            "mode": "publish",
            "label": p.label,
            "kind": format!("{:?}", p.kind).to_lowercase(),
            "messages": p.messages,
            "devices": p.devices,
            "connections": p.connections,
            "rate_target": p.rate,
            "start_ms": start_ms,
            "enqueued_ms": enqueued_ms.unwrap_or(end_ms),
            "end_ms": end_ms,
            "seconds": seconds,
            "messages_per_s": (p.messages as f64 / seconds).round(),
            "distinct_pairs": distinct_pairs,
        })
    );
    for c in &clients {
        let _ = c.disconnect().await;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn subscribe(
    host: String,
    port: u16,
    topic: String,
    messages: u64,
    receive_maximum: Option<u16>,
    hold_acks: bool,
    idle_exit: f64,
    ready_file: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let mut o = options(
        format!("medtech-load-sub-{}", std::process::id()),
        &host,
        port,
    );
    o.set_receive_maximum(receive_maximum)
        .set_manual_acks(hold_acks)
        .set_request_channel_capacity(1024);
    let (client, mut eventloop) = AsyncClient::new(o, 1024);
    let idle = Duration::from_secs_f64(idle_exit);
    let mut count = 0u64;
    let mut first_ms = None;
    let mut last_ms = now_ms();
    loop {
        let event = match tokio::time::timeout(idle, eventloop.poll()).await {
            Err(_) => break,
            Ok(e) => e.context("MQTT connection")?,
        };
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                client.subscribe(topic.clone(), QoS::AtLeastOnce).await?;
            }
            Event::Incoming(Packet::SubAck(_)) => {
                if let Some(f) = &ready_file {
                    std::fs::write(f, b"ready")?;
                }
            }
            Event::Incoming(Packet::Publish(_)) => {
                count += 1;
                last_ms = now_ms();
                first_ms.get_or_insert(last_ms);
                if count >= messages {
                    break;
                }
            }
            _ => {}
        }
    }
    println!(
        "{}",
        json!({
            "mode": "subscribe",
            "messages": count,
            "expected": messages,
            "receive_maximum": receive_maximum,
            "hold_acks": hold_acks,
            "first_ms": first_ms,
            "last_ms": last_ms,
        })
    );
    Ok(())
}

async fn scrape(http: &reqwest::Client, url: &str, metric: &str, label: &str) -> Option<f64> {
    let text = http.get(url).send().await.ok()?.text().await.ok()?;
    let mut sum = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) || !rest.contains(label) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *sum.get_or_insert(0.0) += v;
        }
    }
    sum
}

async fn wait(
    url: String,
    metric: String,
    label: String,
    target: f64,
    stall: f64,
    interval_ms: u64,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    let mut value = 0.0;
    let mut progressed = Instant::now();
    let mut last_report = Instant::now();
    let reached = loop {
        let v = scrape(&http, &url, &metric, &label).await.unwrap_or(value);
        if v > value {
            value = v;
            progressed = Instant::now();
        }
        if value >= target {
            break true;
        }
        if progressed.elapsed().as_secs_f64() > stall {
            break false;
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "[medtech-load] {metric}{{{label}}} = {value} of {target} after {:.1} s",
                t0.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
    };
    if !reached && value == 0.0 && scrape(&http, &url, &metric, &label).await.is_none() {
        bail!("{url} has no series {metric} matching '{label}'");
    }
    println!(
        "{}",
        json!({
            "mode": "wait",
            "metric": metric,
            "target": target,
            "value": value,
            "reached": reached,
            "at_ms": now_ms(),
            "seconds": t0.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}
