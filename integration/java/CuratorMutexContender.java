// A Curator InterProcessMutex contender for the interop test (integration/tests/zookeeper_curator_interop.rs).
// Usage: java CuratorMutexContender <connectString> <lockPath> <markerPath> <iterations>
// Each time it holds the lock it creates the ephemeral marker node; if the marker already exists,
// somebody else holds the lock at the same time: that is a violation, reported on stdout.
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;

public class CuratorMutexContender {
    public static void main(String[] args) throws Exception {
        String connect = args[0];
        String lockPath = args[1];
        String marker = args[2];
        int iterations = Integer.parseInt(args[3]);
        CuratorFramework client = CuratorFrameworkFactory.newClient(
                connect, 10000, 10000, new ExponentialBackoffRetry(50, 5));
        client.start();
        client.blockUntilConnected();
        InterProcessMutex mutex = new InterProcessMutex(client, lockPath);
        int violations = 0;
        System.out.println("READY");
        System.out.flush();
        for (int i = 0; i < iterations; i++) {
            mutex.acquire();
            try {
                try {
                    client.create().withMode(CreateMode.EPHEMERAL).forPath(marker, "curator".getBytes());
                } catch (KeeperException.NodeExistsException e) {
                    violations++;
                    System.out.println("VIOLATION at iteration " + i);
                    continue;
                }
                Thread.sleep(1);
                client.delete().forPath(marker);
            } finally {
                mutex.release();
            }
        }
        System.out.println("DONE " + iterations + " " + violations);
        System.out.flush();
        client.close();
    }
}
