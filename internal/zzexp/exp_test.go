package zzexp

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/tvm2kafka/tvm2kafka/table"
)

func TestLoad(t *testing.T) {
	cl := &kafka.Client{Addr: kafka.TCP("127.0.0.1:19302"), Timeout: 30 * time.Second}
	tb, err := table.New(table.Config{Topic: os.Getenv("TABLE"), RunID: "x", Client: cl, Writer: &kafka.Writer{}, Logger: zerolog.New(os.Stderr)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		time.Sleep(400 * time.Millisecond)
		f, _ := os.Create("/tmp/heap.prof")
		runtime.GC()
		pprof.WriteHeapProfile(f)
		f.Close()
		close(done)
	}()
	cf, _ := os.Create("/tmp/cpu.prof")
	pprof.StartCPUProfile(cf)
	defer pprof.StopCPUProfile()
	if err := tb.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-done
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("heap inuse %d MB sys %d MB", ms.HeapInuse>>20, ms.Sys>>20)
}
