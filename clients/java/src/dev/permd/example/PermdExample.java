package dev.permd.example;

import dev.permd.example.health.v1.HealthCheckRequest;
import dev.permd.example.health.v1.HealthGrpc;
import dev.permd.v1.ActionContext;
import dev.permd.v1.AuthorizerGrpc;
import dev.permd.v1.BatchCheckRequest;
import dev.permd.v1.BatchCheckResponse;
import dev.permd.v1.Denial;
import dev.permd.v1.PackedIds;
import dev.permd.v1.Principal;
import dev.permd.v1.Reason;
import dev.permd.v1.RecordHandles;
import dev.permd.v1.StringIds;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

/**
 * A tiny Java gRPC client of permd: checks health, then asks one BatchCheck --
 * may {@code carol} bulk_send_email the first N Contacts of the built-in demo
 * tenant? -- and prints the allowed count and the denials per reason: the
 * lines examples/python/client.py prints after its service list, and with
 * --json its JSON object less "services" (this client does not call server
 * reflection).
 *
 * <pre>
 *   java dev.permd.example.PermdExample --addr 127.0.0.1:50051 --count 10000 [--json] [--handles]
 * </pre>
 *
 * <p>With --handles it asks twice: the ids with return_handles, then the record
 * handles that answer gave (see {@link HandleCache}).
 */
public final class PermdExample {
  private static final String SERVICE = "permd.v1.Authorizer";
  private static final long RPC_TIMEOUT_S = 30;
  private static final int MAX_MESSAGE_BYTES = 64 << 20;

  private PermdExample() {}

  /** Marks an id this permd has never seen: not cached. */
  private static final int UNKNOWN_HANDLE = 0xFFFFFFFF;

  /** Starts the FAILED_PRECONDITION message of handles this permd did not give out. */
  private static final String STALE_HANDLES = "record_handles were not given out";

  /**
   * The record handles one permd gave out for one tenant's object, to send
   * instead of the ids: 4 bytes per record, and permd skips the id lookup
   * (RecordHandles in proto/permd/v1/authorizer.proto). Keep one per permd
   * address, tenant and object; on FAILED_PRECONDITION starting
   * {@link #STALE_HANDLES} (a restart, a reload, another sidecar), forget
   * them and send the ids again with return_handles.
   */
  static final class HandleCache {
    private long space;
    private Map<String, Integer> handles;

    /** The handles of ids, in order, or null unless every id has one. */
    RecordHandles of(List<String> ids) {
      if (handles == null) {
        return null;
      }
      ByteBuffer ordinals = ByteBuffer.allocate(4 * ids.size()).order(ByteOrder.LITTLE_ENDIAN);
      for (String id : ids) {
        Integer h = handles.get(id);
        if (h == null) {
          return null;
        }
        ordinals.putInt(h);
      }
      ordinals.flip();
      return RecordHandles.newBuilder()
          .setSpace(space)
          .setOrdinals(com.google.protobuf.ByteString.copyFrom(ordinals))
          .build();
    }

    /** Caches the handles an answer gave for ids; another space replaces them all. */
    void remember(List<String> ids, RecordHandles given) {
      ByteBuffer ordinals = given.getOrdinals().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
      if (ordinals.remaining() != 4 * ids.size()) {
        return;
      }
      if (handles == null || space != given.getSpace()) {
        space = given.getSpace();
        handles = new HashMap<>();
      }
      for (String id : ids) {
        int h = ordinals.getInt();
        if (h != UNKNOWN_HANDLE) {
          handles.put(id, h);
        }
      }
    }

    void forget() {
      handles = null;
    }
  }

  /** Id of the n-th demo Contact (src/source/demo.rs {@code contact_id}). */
  static String demoContactId(long n) {
    return String.format("c0000000-0000-4000-8000-%012x", n);
  }

  /** {@code ID} (a user), {@code user:ID}, {@code integration:ID} or {@code automation:ID}. */
  static Principal principal(String spec) {
    int colon = spec.indexOf(':');
    if (colon > 0) {
      String kind = spec.substring(0, colon);
      String id = spec.substring(colon + 1);
      switch (kind) {
        case "user":
          return Principal.newBuilder().setKind(Principal.Kind.USER).setId(id).build();
        case "integration":
          return Principal.newBuilder().setKind(Principal.Kind.INTEGRATION).setId(id).build();
        case "automation":
          return Principal.newBuilder().setKind(Principal.Kind.AUTOMATION).setId(id).build();
        default:
          break;
      }
    }
    return Principal.newBuilder().setKind(Principal.Kind.USER).setId(spec).build();
  }

  private static String reasonName(Denial d) {
    Reason r = d.getReason();
    return r == Reason.UNRECOGNIZED ? "UNKNOWN_REASON_" + d.getReasonValue() : r.name();
  }

  private static void fail(String message) {
    System.err.println(message);
    System.exit(1);
  }

  private static String value(String[] args, int i) {
    if (i >= args.length) {
      fail("missing value for " + args[i - 1]);
    }
    return args[i];
  }

  public static void main(String[] args) throws Exception {
    String addr = "127.0.0.1:50051";
    String tenant = "demo";
    String principalSpec = "carol";
    String action = "bulk_send_email";
    String list = "";
    int count = 10000;
    boolean packed = false;
    boolean json = false;
    boolean byHandles = false;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--addr": addr = value(args, ++i); break;
        case "--tenant": tenant = value(args, ++i); break;
        case "--principal": principalSpec = value(args, ++i); break;
        case "--action": action = value(args, ++i); break;
        case "--list": list = value(args, ++i); break;
        case "--count":
          try {
            count = Integer.parseInt(value(args, ++i));
          } catch (NumberFormatException e) {
            fail("--count must be a number");
          }
          break;
        case "--packed": packed = true; break;
        case "--json": json = true; break;
        case "--handles": byHandles = true; break;
        default:
          fail("usage: PermdExample [--addr HOST:PORT] [--tenant T] [--principal P]"
              + " [--action A] [--list LIST] [--count N] [--packed] [--json] [--handles]");
      }
    }
    if (count < 0) {
      fail("--count must be at least 0");
    }

    BatchCheckRequest.Builder req = BatchCheckRequest.newBuilder()
        .setTenant(tenant)
        .setPrincipal(principal(principalSpec))
        .setObject("contacts")
        .setAction(action)
        .setContext(ActionContext.newBuilder().setSubscriptionList(list));
    List<String> ids = new ArrayList<>();
    for (int n = 0; n < count; n++) {
      ids.add(demoContactId(n));
    }
    if (packed) {
      // 16 bytes per UUID, big-endian, concatenated.
      ByteBuffer buf = ByteBuffer.allocate(16 * count);
      for (String id : ids) {
        java.util.UUID u = java.util.UUID.fromString(id);
        buf.putLong(u.getMostSignificantBits()).putLong(u.getLeastSignificantBits());
      }
      buf.flip();
      req.setPackedRecordIds(
          PackedIds.newBuilder().setUuids(com.google.protobuf.ByteString.copyFrom(buf)));
    } else {
      req.setRecordIds(StringIds.newBuilder().addAllIds(ids));
    }

    ManagedChannel channel = ManagedChannelBuilder.forTarget(addr)
        .usePlaintext()
        .maxInboundMessageSize(MAX_MESSAGE_BYTES)
        .build();
    String health;
    BatchCheckResponse resp;
    try {
      health = HealthGrpc.newBlockingStub(channel)
          .withWaitForReady()
          .withDeadlineAfter(RPC_TIMEOUT_S, TimeUnit.SECONDS)
          .check(HealthCheckRequest.newBuilder().setService(SERVICE).build())
          .getStatus()
          .name();
      AuthorizerGrpc.AuthorizerBlockingStub authorizer = AuthorizerGrpc.newBlockingStub(channel)
          .withMaxOutboundMessageSize(MAX_MESSAGE_BYTES);
      resp = byHandles ? byHandles(authorizer, req, ids) : withDeadline(authorizer).batchCheck(req.build());
    } catch (StatusRuntimeException e) {
      fail("permd refused: " + e.getStatus().getCode() + ": " + e.getStatus().getDescription());
      return;
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    Map<String, Integer> denials = new TreeMap<>();
    for (Denial d : resp.getDenialsList()) {
      denials.merge(reasonName(d), 1, Integer::sum);
    }
    byte[] bits = resp.getAllowed().toByteArray();
    int allowedBits = 0;
    for (int i = 0; i < count; i++) {
      if (i / 8 < bits.length && ((bits[i / 8] >> (i % 8)) & 1) == 1) {
        allowedBits++;
      }
    }

    if (json) {
      // Keys sorted, as Python's json.dumps(sort_keys=True); ids and reason
      // names are ASCII, so no escaping is needed beyond quoting.
      List<String> parts = new ArrayList<>();
      for (Map.Entry<String, Integer> e : denials.entrySet()) {
        parts.add("\"" + e.getKey() + "\": " + e.getValue());
      }
      System.out.println("{\"action\": " + quote(action)
          + ", \"allowed_bits\": " + allowedBits
          + ", \"allowed_count\": " + Integer.toUnsignedString(resp.getAllowedCount())
          + ", \"count\": " + count
          + ", \"denials\": {" + String.join(", ", parts) + "}"
          + ", \"denied_count\": " + resp.getDenialsCount()
          + ", \"health\": " + quote(health)
          + ", \"principal\": " + quote(principalSpec)
          + ", \"revision\": " + Long.toUnsignedString(resp.getRevision())
          + ", \"tenant\": " + quote(tenant) + "}");
      return;
    }
    System.out.println("health of " + SERVICE + ": " + health);
    System.out.printf("%s %s on %d contacts of %s (revision %s): %d allowed, %d denied%n",
        principalSpec, action, count, tenant, Long.toUnsignedString(resp.getRevision()),
        resp.getAllowedCount(), resp.getDenialsCount());
    List<Map.Entry<String, Integer>> byCount = new ArrayList<>(denials.entrySet());
    byCount.sort((a, b) -> a.getValue().equals(b.getValue())
        ? a.getKey().compareTo(b.getKey()) : b.getValue() - a.getValue());
    for (Map.Entry<String, Integer> e : byCount) {
      System.out.printf("  %-22s %6d%n", e.getKey(), e.getValue());
    }
  }

  /**
   * Asks by ids with return_handles, then again by the handles that answer
   * gave (the same answer); stale handles are forgotten and the ids sent again.
   */
  static BatchCheckResponse byHandles(
      AuthorizerGrpc.AuthorizerBlockingStub authorizer,
      BatchCheckRequest.Builder byIds,
      List<String> ids) {
    HandleCache cache = new HandleCache();
    BatchCheckResponse resp =
        withDeadline(authorizer).batchCheck(byIds.clone().setReturnHandles(true).build());
    cache.remember(ids, resp.getHandles());
    RecordHandles handles = cache.of(ids);
    if (handles == null) {
      return resp; // some id has no handle yet: ask by ids
    }
    try {
      resp = withDeadline(authorizer).batchCheck(byIds.clone().setRecordHandles(handles).build());
      System.err.println("asked again by " + ids.size() + " record handles");
      return resp;
    } catch (StatusRuntimeException e) {
      String message = e.getStatus().getDescription();
      if (e.getStatus().getCode() != Status.Code.FAILED_PRECONDITION
          || message == null || !message.startsWith(STALE_HANDLES)) {
        throw e;
      }
      cache.forget();
      resp = withDeadline(authorizer).batchCheck(byIds.clone().setReturnHandles(true).build());
      cache.remember(ids, resp.getHandles());
      return resp;
    }
  }

  /** The stub with a deadline of its own for the next call. */
  private static AuthorizerGrpc.AuthorizerBlockingStub withDeadline(
      AuthorizerGrpc.AuthorizerBlockingStub stub) {
    return stub.withDeadlineAfter(RPC_TIMEOUT_S, TimeUnit.SECONDS);
  }

  /** A JSON string as Python writes it: non-ASCII and control characters escaped. */
  static String quote(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      switch (c) {
        case '"': b.append("\\\""); break;
        case '\\': b.append("\\\\"); break;
        case '\n': b.append("\\n"); break;
        case '\r': b.append("\\r"); break;
        case '\t': b.append("\\t"); break;
        case '\b': b.append("\\b"); break;
        case '\f': b.append("\\f"); break;
        default:
          if (c < 0x20 || c > 0x7e) {
            b.append(String.format("\\u%04x", (int) c));
          } else {
            b.append(c);
          }
      }
    }
    return b.append('"').toString();
  }
}
