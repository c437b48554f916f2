package cloudtrail

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/collectors/internal/window"
	"github.com/provtrail/provtrail/event"
)

// lookupFetcher reads one region's management events with LookupEvents.
// The API answers newest first; the Engine drains every page of a window
// before moving on, so the order within a window does not matter.
type lookupFetcher struct {
	region   string
	attr     types.LookupAttribute
	api      *cloudtrail.Client
	pacer    *window.Pacer
	m        *mapper
	problems collectors.ProblemReporter
}

func (f *lookupFetcher) Fetch(ctx context.Context, w window.Window, page string) (window.Page, error) {
	if err := f.pacer.Wait(ctx); err != nil {
		return window.Page{}, err
	}
	from, to := w.From, w.To
	in := &cloudtrail.LookupEventsInput{
		StartTime: &from,
		EndTime:   &to,
		// One attribute only: write events (or one event source),
		// filtered by source and name here.
		LookupAttributes: []types.LookupAttribute{f.attr},
		MaxResults:       aws.Int32(50),
	}
	if page != "" {
		in.NextToken = aws.String(page)
	}
	out, err := f.api.LookupEvents(ctx, in)
	if err != nil {
		return window.Page{}, fmt.Errorf("cloudtrail: LookupEvents in %s: %w", f.region, classify(err))
	}
	var p window.Page
	for i, e := range out.Events {
		where := fmt.Sprintf("cloudtrail %s %s #%d", f.region, w.String(), i+1)
		if e.CloudTrailEvent == nil {
			cloudjson.Report(f.problems, where, "event without CloudTrailEvent", []byte(aws.ToString(e.EventId)))
			continue
		}
		rec := []byte(*e.CloudTrailEvent)
		ev, ok, err := f.m.Map(rec)
		if err != nil {
			cloudjson.Report(f.problems, where, err.Error(), rec)
			continue
		}
		if ok {
			if ev.Source.EventID == "" && aws.ToString(e.EventId) != "" {
				ev.Source.EventID = aws.ToString(e.EventId)
				ev.ID = event.NewID(Type, ev.Origin.Instance, ev.Source.EventID)
			}
			p.Events = append(p.Events, ev)
		}
	}
	p.Next = aws.ToString(out.NextToken)
	return p, nil
}
