// Command permd-example is a small Go gRPC client of permd.
//
// It lists the server's services through server reflection (v1alpha), checks
// health, then asks one BatchCheck: may `carol` bulk_send_email the first N
// Contacts of the built-in demo tenant? It prints the allowed count and a
// histogram of the denial reasons -- the same text, and with --json the same
// JSON object, as examples/python/client.py and examples/node/client.js.
//
//	./generate.sh                          # stubs into gen/ (see README.md)
//	permd serve &                          # the demo tenant on 127.0.0.1:50051
//	permd-example --addr 127.0.0.1:50051 --count 10000
//	permd-example --addr 127.0.0.1:50051 --count 10000 --json
//	permd-example --addr 127.0.0.1:50051 --count 10000 --handles
package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	refl "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	permdv1 "github.com/permd/permd/clients/go/gen/permd/v1"
)

const (
	service         = "permd.v1.Authorizer"
	rpcTimeout      = 30 * time.Second
	maxMessageBytes = 64 << 20
)

type options struct {
	addr, tenant, principal, action, list string
	count                                 int
	packed, json, handles                 bool
}

// unknownHandle marks an id this permd has never seen: not cached.
const unknownHandle = 0xFFFFFFFF

// staleHandles starts the FAILED_PRECONDITION message of handles this permd
// did not give out (another permd's, or from before a restart or reload).
const staleHandles = "record_handles were not given out"

// handleCache remembers the record handles one permd gave out for one
// tenant's object, to send instead of the ids: 4 bytes per record, and
// permd skips the id lookup (RecordHandles in proto/permd/v1/authorizer.proto).
// Keep one per permd address, tenant and object.
type handleCache struct {
	space   uint64
	handles map[string]uint32
}

// of gives the handles of ids, in order, when every id has one.
func (c *handleCache) of(ids []string) (*permdv1.RecordHandles, bool) {
	if c.handles == nil {
		return nil, false
	}
	ordinals := make([]byte, 4*len(ids))
	for i, id := range ids {
		h, ok := c.handles[id]
		if !ok {
			return nil, false
		}
		binary.LittleEndian.PutUint32(ordinals[4*i:], h)
	}
	return &permdv1.RecordHandles{Space: c.space, Ordinals: ordinals}, true
}

// remember caches the handles an answer gave for ids (one per position);
// handles of another space replace the whole cache.
func (c *handleCache) remember(ids []string, h *permdv1.RecordHandles) {
	if h == nil || len(h.GetOrdinals()) != 4*len(ids) {
		return
	}
	if c.handles == nil || c.space != h.GetSpace() {
		c.space, c.handles = h.GetSpace(), map[string]uint32{}
	}
	for i, id := range ids {
		if o := binary.LittleEndian.Uint32(h.GetOrdinals()[4*i:]); o != unknownHandle {
			c.handles[id] = o
		}
	}
}

func (c *handleCache) forget() { c.handles = nil }

// demoContactID is the id of the n-th demo Contact (src/source/demo.rs `contact_id`).
func demoContactID(n int) string {
	return fmt.Sprintf("c0000000-0000-4000-8000-%012x", n)
}

// principal parses `ID` (a user), `user:ID`, `integration:ID` or `automation:ID`.
func principal(spec string) *permdv1.Principal {
	kinds := map[string]permdv1.Principal_Kind{
		"user":        permdv1.Principal_USER,
		"integration": permdv1.Principal_INTEGRATION,
		"automation":  permdv1.Principal_AUTOMATION,
	}
	if i := strings.IndexByte(spec, ':'); i > 0 {
		if kind, ok := kinds[spec[:i]]; ok {
			return &permdv1.Principal{Kind: kind, Id: spec[i+1:]}
		}
	}
	return &permdv1.Principal{Kind: permdv1.Principal_USER, Id: spec}
}

func reasonName(r permdv1.Reason) string {
	if name, ok := permdv1.Reason_name[int32(r)]; ok {
		return name
	}
	return fmt.Sprintf("UNKNOWN_REASON_%d", int32(r))
}

// listServices asks server reflection v1alpha for the service names, sorted.
func listServices(ctx context.Context, conn *grpc.ClientConn) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	stream, err := refl.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	req := &refl.ServerReflectionRequest{
		MessageRequest: &refl.ServerReflectionRequest_ListServices{ListServices: ""},
	}
	if err := stream.Send(req); err != nil {
		return nil, err
	}
	if err := stream.CloseSend(); err != nil {
		return nil, err
	}
	var names []string
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if e := resp.GetErrorResponse(); e != nil {
			return nil, fmt.Errorf("reflection: %s", e.GetErrorMessage())
		}
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
	}
	sort.Strings(names)
	return names, nil
}

func health(ctx context.Context, conn *grpc.ClientConn) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := grpc_health_v1.NewHealthClient(conn).Check(ctx,
		&grpc_health_v1.HealthCheckRequest{Service: service})
	if err != nil {
		return "", err
	}
	return resp.GetStatus().String(), nil
}

type result struct {
	allowedCount, allowedBits, deniedCount int
	denials                                map[string]int
	revision                               uint64
	handles                                *permdv1.RecordHandles
}

// batchCheck asks once; with --handles twice, the second time by the
// handles the first answer gave (the same answer, in a quarter of the bytes
// of packed ids), sending the ids again if permd refuses them as stale.
func batchCheck(ctx context.Context, conn *grpc.ClientConn, o options) (*result, error) {
	ids := make([]string, o.count)
	for n := range ids {
		ids[n] = demoContactID(n)
	}
	if !o.handles {
		return check(ctx, conn, o, idRequest(o, ids))
	}
	// First the ids, with return_handles: the answer's handles are cached.
	var cache handleCache
	first := idRequest(o, ids)
	first.ReturnHandles = true
	r, err := check(ctx, conn, o, first)
	if err != nil {
		return nil, err
	}
	cache.remember(ids, r.handles)
	handles, ok := cache.of(ids)
	if !ok {
		return r, nil // some id has no handle yet: ask by ids
	}
	// Then the handles instead of the ids.
	req := idRequest(o, ids)
	req.Records = &permdv1.BatchCheckRequest_RecordHandles{RecordHandles: handles}
	r, err = check(ctx, conn, o, req)
	if err == nil {
		fmt.Fprintf(os.Stderr, "asked again by %d record handles\n", len(ids))
	}
	if s, _ := status.FromError(err); s.Code() == codes.FailedPrecondition &&
		strings.HasPrefix(s.Message(), staleHandles) {
		// Not this permd's handles (a restart, a reload, another sidecar
		// behind the address): forget them and ask by ids again.
		cache.forget()
		again := idRequest(o, ids)
		again.ReturnHandles = true
		if r, err = check(ctx, conn, o, again); err == nil {
			cache.remember(ids, r.handles)
		}
	}
	return r, err
}

// idRequest asks about ids, as strings or (--packed) as 16-byte UUIDs.
func idRequest(o options, ids []string) *permdv1.BatchCheckRequest {
	req := &permdv1.BatchCheckRequest{
		Tenant:    o.tenant,
		Principal: principal(o.principal),
		Object:    "contacts",
		Action:    o.action,
		Context:   &permdv1.ActionContext{SubscriptionList: o.list},
	}
	if o.packed {
		// 16 bytes per UUID, big-endian, concatenated.
		packed := make([]byte, 0, 16*len(ids))
		for _, id := range ids {
			// The demo ids are well-formed: DecodeString cannot fail here.
			b, _ := hex.DecodeString(strings.ReplaceAll(id, "-", ""))
			packed = append(packed, b...)
		}
		req.Records = &permdv1.BatchCheckRequest_PackedRecordIds{
			PackedRecordIds: &permdv1.PackedIds{Uuids: packed},
		}
	} else {
		req.Records = &permdv1.BatchCheckRequest_RecordIds{RecordIds: &permdv1.StringIds{Ids: ids}}
	}
	return req
}

func check(ctx context.Context, conn *grpc.ClientConn, o options, req *permdv1.BatchCheckRequest) (*result, error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := permdv1.NewAuthorizerClient(conn).BatchCheck(ctx, req)
	if err != nil {
		return nil, err
	}
	r := &result{
		allowedCount: int(resp.GetAllowedCount()),
		deniedCount:  len(resp.GetDenials()),
		denials:      map[string]int{},
		revision:     resp.GetRevision(),
		handles:      resp.GetHandles(),
	}
	for _, d := range resp.GetDenials() {
		r.denials[reasonName(d.GetReason())]++
	}
	// Bit i (byte i/8, bit i%8, least significant first) = position i allowed.
	allowed := resp.GetAllowed()
	for i := 0; i < o.count; i++ {
		if i/8 < len(allowed) && allowed[i/8]>>(i%8)&1 == 1 {
			r.allowedBits++
		}
	}
	return r, nil
}

// pyString writes s as Python's json.dumps does: non-ASCII as \uXXXX.
func pyString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\f':
			b.WriteString(`\f`)
		case c < 0x20 || c > 0x7e:
			if c > 0xffff {
				hi, lo := utf16.EncodeRune(c)
				fmt.Fprintf(&b, `\u%04x\u%04x`, hi, lo)
			} else {
				fmt.Fprintf(&b, `\u%04x`, c)
			}
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// pyJSON writes the report as Python's json.dumps(report, sort_keys=True):
// sorted keys, ", " and ": " separators.
func pyJSON(fields map[string]string) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = pyString(k) + ": " + fields[k]
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func refused(err error) {
	if s, ok := status.FromError(err); ok {
		fail("permd refused: %s: %s", strings.ToUpper(snake(s.Code().String())), s.Message())
	}
	fail("permd refused: %v", err)
}

// snake turns grpc-go's code names (NotFound) into the wire names (NOT_FOUND).
func snake(s string) string {
	var b strings.Builder
	prevLower := false
	for _, c := range s {
		if prevLower && c >= 'A' && c <= 'Z' {
			b.WriteByte('_')
		}
		prevLower = c >= 'a' && c <= 'z'
		b.WriteRune(c)
	}
	return b.String()
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:50051", "host:port of permd")
	flag.IntVar(&o.count, "count", 10000, "demo Contacts to check")
	flag.StringVar(&o.tenant, "tenant", "demo", "tenant")
	flag.StringVar(&o.principal, "principal", "carol", "a user id, or integration:ID / automation:ID")
	flag.StringVar(&o.action, "action", "bulk_send_email", "action")
	flag.StringVar(&o.list, "list", "", "subscription list the mail goes out on")
	flag.BoolVar(&o.packed, "packed", false, "send 16-byte packed ids instead of strings")
	flag.BoolVar(&o.json, "json", false, "print one JSON object")
	flag.BoolVar(&o.handles, "handles", false, "ask twice, the second time by the record handles the first answer gave")
	flag.Parse()
	if flag.NArg() > 0 {
		fail("unexpected argument %q", flag.Arg(0))
	}
	if o.count < 0 {
		fail("--count must be at least 0")
	}

	ctx := context.Background()
	dialCtx, cancel := context.WithTimeout(ctx, rpcTimeout)
	// WithInsecure: plaintext, as `permd serve` speaks without --tls-cert.
	// (grpc-go >= 1.34 also has credentials/insecure; Debian 12 ships 1.33.)
	conn, err := grpc.DialContext(dialCtx, o.addr,
		grpc.WithInsecure(),
		grpc.WithBlock(),
		// Fail at once when nothing listens, instead of retrying until the deadline.
		grpc.FailOnNonTempDialError(true),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallSendMsgSize(maxMessageBytes),
			grpc.MaxCallRecvMsgSize(maxMessageBytes),
		),
	)
	cancel()
	if err != nil {
		fail("permd not reachable at %s: %v", o.addr, err)
	}
	defer conn.Close()

	services, err := listServices(ctx, conn)
	if err != nil {
		refused(err)
	}
	healthStatus, err := health(ctx, conn)
	if err != nil {
		refused(err)
	}
	r, err := batchCheck(ctx, conn, o)
	if err != nil {
		refused(err)
	}

	if o.json {
		quoted := make([]string, len(services))
		for i, s := range services {
			quoted[i] = pyString(s)
		}
		denials := map[string]string{}
		for k, v := range r.denials {
			denials[k] = strconv.Itoa(v)
		}
		fmt.Println(pyJSON(map[string]string{
			"services":      "[" + strings.Join(quoted, ", ") + "]",
			"health":        pyString(healthStatus),
			"tenant":        pyString(o.tenant),
			"principal":     pyString(o.principal),
			"action":        pyString(o.action),
			"count":         strconv.Itoa(o.count),
			"allowed_count": strconv.Itoa(r.allowedCount),
			"allowed_bits":  strconv.Itoa(r.allowedBits),
			"denied_count":  strconv.Itoa(r.deniedCount),
			"denials":       pyJSON(denials),
			"revision":      strconv.FormatUint(r.revision, 10),
		}))
		return
	}
	fmt.Println("services (reflection v1alpha):")
	for _, s := range services {
		fmt.Println("  " + s)
	}
	fmt.Printf("health of %s: %s\n", service, healthStatus)
	fmt.Printf("%s %s on %d contacts of %s (revision %d): %d allowed, %d denied\n",
		o.principal, o.action, o.count, o.tenant, r.revision, r.allowedCount, r.deniedCount)
	reasons := make([]string, 0, len(r.denials))
	for k := range r.denials {
		reasons = append(reasons, k)
	}
	sort.Slice(reasons, func(i, j int) bool {
		a, b := reasons[i], reasons[j]
		if r.denials[a] != r.denials[b] {
			return r.denials[a] > r.denials[b]
		}
		return a < b
	})
	for _, k := range reasons {
		fmt.Printf("  %-22s %6d\n", k, r.denials[k])
	}
}
