//! The probes, loaded into the kernel for real, count events we generate ourselves: a child
//! doing exactly N fsyncs, a probe-point function called N times (and the block records its
//! commit uretprobe sends), threads made to wait for one CPU, a thread sleeping.
//!
//! Needs root (CI runs as root); as another user each test says so and passes vacuously.

use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tpslab_probe::{available, ProbeError, ProbeKind, Probes, Target};

const CHILD: &str = "TPSLAB_PROBE_TEST_CHILD";

fn can_probe() -> bool {
    match available() {
        Ok(()) => true,
        Err(ProbeError::NotRoot(uid)) => {
            eprintln!("skipping: probes need root, running as uid {uid}");
            false
        }
        Err(e) => panic!("probes unavailable as root: {e}"),
    }
}

/// Starts this test binary as a child that waits for a line on stdin, then does `work`.
fn child(work: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_main", "--nocapture", "--test-threads=1"])
        .env(CHILD, work)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn go_and_wait(mut c: Child) {
    c.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let status = c.wait().unwrap();
    assert!(status.success());
}

/// Not a test of its own: the body of the child processes above.
#[test]
fn child_main() {
    let Ok(work) = std::env::var(CHILD) else {
        return;
    };
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    let (what, n) = work.split_once(':').unwrap();
    let n: u64 = n.parse().unwrap();
    match what {
        "fsync" => {
            let dir = std::env::temp_dir().join(format!("tpslab-fsync-{}", std::process::id()));
            let mut f = std::fs::File::create(&dir).unwrap();
            for _ in 0..n {
                f.write_all(b"x").unwrap();
                f.sync_all().unwrap();
            }
            std::fs::remove_file(&dir).unwrap();
        }
        "crowd" => {
            // n spinning threads pinned to CPU 0: all but one wait on its run queue.
            let threads: Vec<_> = (0..n)
                .map(|_| {
                    std::thread::spawn(|| {
                        pin_to_cpu0();
                        let end = std::time::Instant::now() + Duration::from_millis(400);
                        while std::time::Instant::now() < end {
                            std::hint::spin_loop();
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        other => panic!("unknown child work {other}"),
    }
}

fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t with one bit set, passed by pointer with its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0
        );
    }
}

#[test]
fn syscalls_counts_exactly_the_fsyncs_of_a_child() {
    if !can_probe() || std::env::var(CHILD).is_ok() {
        return;
    }
    const N: u64 = 37;
    let c = child(&format!("fsync:{N}"));
    let mut probes = Probes::attach(&[Target { pid: c.id() }], &[ProbeKind::Syscalls]).unwrap();
    go_and_wait(c);
    let report = probes.read().unwrap();
    let p = &report.procs[0];
    let fsync = p.syscall("fsync").expect("fsync seen");
    assert_eq!(fsync.count, N, "{:?}", p.syscalls);
    let hist = fsync.hist.as_ref().expect("fsync is tracked");
    assert_eq!(hist.total(), N);
    assert!(fsync.total_ns > 0);
    assert!(p.syscall("write").is_some_and(|w| w.count >= N));
}

#[test]
fn funclatency_times_each_call_and_commit_sends_block_records() {
    if !can_probe() || std::env::var(CHILD).is_ok() {
        return;
    }
    const N: u64 = 250;
    let me = std::process::id();
    let mut probes = Probes::attach(&[Target { pid: me }], &[ProbeKind::Funclatency]).unwrap();
    for i in 0..N {
        tpslab_probe_points::check_txs(i, 0, || std::hint::black_box(i * 2));
    }
    for i in 0..3u64 {
        tpslab_probe_points::write_batch(i, 0, || ());
    }
    for h in 1..=5u64 {
        tpslab_probe_points::commit_block(h, 100 + h, || {
            std::thread::sleep(Duration::from_millis(2))
        });
    }
    let report = probes.read().unwrap();
    let p = &report.procs[0];
    assert_eq!(p.func("check_txs").unwrap().hist.total(), N);
    // Each symbol is its own function (not folded into one address with the others).
    assert_eq!(p.func("write_batch").unwrap().hist.total(), 3);
    let commit = p.func("commit_block").unwrap();
    assert_eq!(commit.hist.total(), 5);
    // Each commit slept 2 ms: its latency bucket is at least 2^20 ns.
    assert!(
        commit.hist.quantile(0.5).unwrap() >= 1 << 21,
        "{:?}",
        commit.hist
    );
    let mine: Vec<_> = report.blocks.iter().filter(|b| b.pid == me).collect();
    assert_eq!(mine.len(), 5, "{:?}", report.blocks);
    for (b, h) in mine.iter().zip(1..) {
        assert_eq!((b.height, b.txs), (h, 100 + h));
        assert!(b.duration_ns >= 2_000_000);
    }
}

#[test]
fn runqlat_sees_threads_waiting_for_a_cpu_and_offcpu_sees_sleep() {
    if !can_probe() || std::env::var(CHILD).is_ok() {
        return;
    }
    let c = child("crowd:3");
    let mut probes = Probes::attach(
        &[Target { pid: c.id() }],
        &[ProbeKind::Runqlat, ProbeKind::Offcpu],
    )
    .unwrap();
    go_and_wait(c);
    let report = probes.read().unwrap();
    let p = &report.procs[0];
    // Three threads sharing one CPU for 400 ms: many waits, the long ones a scheduler slice.
    assert!(p.runq.total() >= 3, "{:?}", p.runq);
    assert!(
        p.runq.quantile(0.99).unwrap() >= 1_000,
        "{}",
        p.runq.render()
    );
    assert!(p.offcpu.runq_ns >= 200_000_000, "{:?}", p.offcpu);
    assert!(p.offcpu.oncpu_ns >= 300_000_000, "{:?}", p.offcpu);
    // The main thread slept 200 ms after joining.
    assert!(p.offcpu.sleeping_ns >= 200_000_000, "{:?}", p.offcpu);
}

#[test]
fn net_counts_loopback_packets_received_in_process() {
    if !can_probe() || std::env::var(CHILD).is_ok() {
        return;
    }
    use std::io::Read;
    const N: usize = 200;
    let me = std::process::id();
    let mut probes = Probes::attach(&[Target { pid: me }], &[ProbeKind::Net]).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        for _ in 0..N {
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        }
    });
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    let mut buf = [7u8; 64];
    for _ in 0..N {
        c.write_all(&buf).unwrap();
        c.read_exact(&mut buf).unwrap();
    }
    server.join().unwrap();
    let report = probes.read().unwrap();
    let p = &report.procs[0];
    // 2N data segments crossed loopback; the receive path runs in the sender's softirq
    // context unless ksoftirqd takes it, so most are counted here.
    assert!(p.net_rx >= N as u64, "net_rx {}", p.net_rx);
    assert_eq!(p.tcp_retransmits, 0);
}
