// Curator's InterProcessMutex measured the way integration/src/bin/bench.rs measures menagerie's
// Mutex, on the same ZooKeeper: cycles/s alone, cycles/s with N contenders (one session each), and
// hand-off latency (a holder's release starts -> the next holder's acquire returns).
// Usage: java CuratorLockBench <connectString> <basePath> <contenders> <seconds>
// Prints: "alone <cycles/s>" then "contended <cycles/s> <p50 µs> <p99 µs>".
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.ExponentialBackoffRetry;

public class CuratorLockBench {
    static CuratorFramework client(String connect) throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.newClient(
                connect, 10000, 10000, new ExponentialBackoffRetry(50, 5));
        c.start();
        c.blockUntilConnected();
        return c;
    }

    static long cycles(InterProcessMutex m, long untilNanos) throws Exception {
        long n = 0;
        while (System.nanoTime() < untilNanos) {
            m.acquire();
            m.release();
            n++;
        }
        return n;
    }

    public static void main(String[] args) throws Exception {
        String connect = args[0];
        String base = args[1];
        int contenders = Integer.parseInt(args[2]);
        double seconds = Double.parseDouble(args[3]);
        long window = (long) (seconds * 1e9);

        // Alone, after a warm-up of the same length (the JIT compiles Curator's paths).
        CuratorFramework one = client(connect);
        InterProcessMutex alone = new InterProcessMutex(one, base + "/alone");
        cycles(alone, System.nanoTime() + window);
        long start = System.nanoTime();
        long n = cycles(alone, start + window);
        System.out.printf("alone %.1f%n", n / ((System.nanoTime() - start) / 1e9));
        System.out.flush();

        List<CuratorFramework> clients = new ArrayList<>();
        for (int i = 0; i < contenders; i++) {
            clients.add(client(connect));
        }
        final AtomicLong released = new AtomicLong(0);
        final List<Long> handoffs = Collections.synchronizedList(new ArrayList<>());
        final AtomicLong total = new AtomicLong(0);
        final long began = System.nanoTime();
        final long until = began + window;
        List<Thread> threads = new ArrayList<>();
        for (CuratorFramework c : clients) {
            final InterProcessMutex m = new InterProcessMutex(c, base + "/contended");
            Thread t = new Thread(() -> {
                try {
                    while (System.nanoTime() < until) {
                        m.acquire();
                        long at = released.getAndSet(0);
                        if (at != 0) {
                            handoffs.add(System.nanoTime() - at);
                        }
                        total.incrementAndGet();
                        released.set(System.nanoTime());
                        m.release();
                    }
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) {
            t.join();
        }
        double rate = total.get() / ((System.nanoTime() - began) / 1e9);
        List<Long> h = new ArrayList<>(handoffs);
        Collections.sort(h);
        double p50 = h.isEmpty() ? 0 : h.get(h.size() / 2) / 1e3;
        double p99 = h.isEmpty() ? 0 : h.get(Math.min(h.size() - 1, (int) (h.size() * 0.99))) / 1e3;
        System.out.printf("contended %.1f %.1f %.1f%n", rate, p50, p99);
        System.out.flush();
        for (CuratorFramework c : clients) {
            c.close();
        }
        one.close();
    }
}
