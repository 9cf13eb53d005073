//! `PacketInfo::parse` on the two common hot-path shapes.
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use packet::parse::PacketInfo;

/// 64-byte Ethernet/IPv4/UDP frame (22 bytes of payload).
fn udp4_frame() -> [u8; 64] {
    let mut f = [0u8; 64];
    f[..14].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]);
    f[14..34].copy_from_slice(&[
        0x45, 0, 0, 50, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
    ]);
    f[34..42].copy_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 30, 0, 0]);
    f
}

/// Ethernet/IPv6/TCP SYN frame (no payload).
fn tcp6_frame() -> [u8; 74] {
    let mut f = [0u8; 74];
    f[..14].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd]);
    f[14..22].copy_from_slice(&[0x60, 0, 0, 0, 0, 20, 6, 64]);
    f[22..24].copy_from_slice(&[0x20, 0x01]);
    f[24..26].copy_from_slice(&[0x0d, 0xb8]);
    f[37] = 1;
    f[38..40].copy_from_slice(&[0x20, 0x01]);
    f[40..42].copy_from_slice(&[0x0d, 0xb8]);
    f[53] = 2;
    f[54..74].copy_from_slice(&[
        0xc3, 0x50, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    f
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    let udp4 = udp4_frame();
    assert!(PacketInfo::parse(&udp4).is_ok_and(|i| i.dport == 53));
    g.bench_function("udp4_64B", |b| {
        b.iter(|| PacketInfo::parse(black_box(&udp4)))
    });
    let tcp6 = tcp6_frame();
    assert!(PacketInfo::parse(&tcp6).is_ok_and(|i| i.dport == 80 && i.tcp_flags == 2));
    g.bench_function("tcp6", |b| b.iter(|| PacketInfo::parse(black_box(&tcp6))));
    g.finish();

    let mut g = c.benchmark_group("checksum");
    let data = [0xa5u8; 1500];
    g.throughput(Throughput::Bytes(1500));
    g.bench_function("sum_1500B", |b| {
        b.iter(|| packet::checksum::sum(black_box(&data)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
