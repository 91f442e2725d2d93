package p2p

import (
	"context"
	"fmt"
	"log/slog"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapHandler forwards the torrent library's slog records to zap. The library logs at
// info what is routine for it (piece failures, bans are also counted in metrics), so
// its info and debug records become zap debug.
type zapHandler struct{ log *zap.Logger }

var _ slog.Handler = zapHandler{}

func (h zapHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.Core().Enabled(zapLevel(l))
}

func (h zapHandler) Handle(_ context.Context, r slog.Record) error {
	ce := h.log.Check(zapLevel(r.Level), r.Message)
	if ce == nil {
		return nil
	}
	fields := make([]zap.Field, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		fields = append(fields, zapField(a))
		return true
	})
	ce.Write(fields...)
	return nil
}

func (h zapHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	fields := make([]zap.Field, 0, len(attrs))
	for _, a := range attrs {
		fields = append(fields, zapField(a))
	}
	return zapHandler{log: h.log.With(fields...)}
}

func (h zapHandler) WithGroup(name string) slog.Handler {
	return zapHandler{log: h.log.With(zap.Namespace(name))}
}

func zapLevel(l slog.Level) zapcore.Level {
	switch {
	case l >= slog.LevelError:
		return zapcore.ErrorLevel
	case l >= slog.LevelWarn:
		return zapcore.WarnLevel
	default:
		return zapcore.DebugLevel
	}
}

// zapField renders library values (peers, connections) with fmt rather than
// reflection: they are large, locked, cyclic structs.
func zapField(a slog.Attr) zap.Field {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return zap.String(a.Key, v.String())
	case slog.KindInt64:
		return zap.Int64(a.Key, v.Int64())
	case slog.KindUint64:
		return zap.Uint64(a.Key, v.Uint64())
	case slog.KindFloat64:
		return zap.Float64(a.Key, v.Float64())
	case slog.KindBool:
		return zap.Bool(a.Key, v.Bool())
	case slog.KindDuration:
		return zap.Duration(a.Key, v.Duration())
	case slog.KindTime:
		return zap.Time(a.Key, v.Time())
	}
	if err, ok := v.Any().(error); ok {
		return zap.NamedError(a.Key, err)
	}
	return zap.String(a.Key, fmt.Sprint(v.Any()))
}
