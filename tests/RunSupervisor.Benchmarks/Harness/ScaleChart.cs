using System.Globalization;
using System.Text;

namespace RunSupervisor.Benchmarks.Harness;

/// <summary>
/// <c>chart</c>: draws the scale curve from the CSV that <c>scale --out</c> wrote, as a dependency-free SVG with two
/// panels (start latency p50 and p99; retained bytes per run), active runs on a logarithmic x axis, one line per
/// implementation.
/// </summary>
public static class ScaleChart
{
    private const int PanelWidth = 420;
    private const int PanelHeight = 260;
    private const int Left = 70;
    private const int Top = 50;
    private const int Gap = 90;

    private static readonly string[] Colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

    /// <summary>Runs the mode.</summary>
    /// <param name="args">Options: <c>--in scale.csv</c>, <c>--out scale.svg</c>, <c>--title "..."</c>.</param>
    /// <returns>The exit code.</returns>
    public static int Run(HarnessArguments args)
    {
        ArgumentNullException.ThrowIfNull(args);
        string input = args.GetString("in", "scale.csv")!;
        string output = args.GetString("out", "scale.svg")!;
        string title = args.GetString("title", "RunSupervisor scale: start latency and retained bytes per run")!;
        args.ThrowIfUnknown();

        List<Row> rows = [.. File.ReadAllLines(input).Skip(1).Where(static l => l.Length > 0).Select(Row.Parse)];
        if (rows.Count == 0)
        {
            throw new InvalidOperationException($"{input} has no rows.");
        }

        File.WriteAllText(output, Render(rows, title));
        Console.WriteLine($"wrote {output} ({rows.Count} points)");
        return 0;
    }

    /// <summary>Renders the chart.</summary>
    /// <param name="rows">The scale rows.</param>
    /// <param name="title">The chart's title.</param>
    /// <returns>The SVG document.</returns>
    internal static string Render(IReadOnlyList<Row> rows, string title)
    {
        int width = Left + PanelWidth + Gap + PanelWidth + 30;
        int height = Top + PanelHeight + 90;
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        svg.Append(CultureInfo.InvariantCulture, $"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{width / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{Escape(title)}</text>\n");

        string[] impls = [.. rows.Select(static r => r.Impl).Distinct()];
        Panel(svg, rows, impls, Left, "start latency (ns)", [("p50", static r => r.StartP50Ns, ""), ("p99", static r => r.StartP99Ns, "5,4")]);
        Panel(svg, rows, impls, Left + PanelWidth + Gap, "retained bytes per run", [("", static r => r.BytesPerRun, "")]);

        // Legend: one colour per implementation; dashes mark p99.
        int ly = Top + PanelHeight + 60;
        for (int i = 0; i < impls.Length; i++)
        {
            int lx = Left + (i * 170);
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{lx + 24}\" y2=\"{ly}\" stroke=\"{Colors[i % Colors.Length]}\" stroke-width=\"2.5\"/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{lx + 30}\" y=\"{ly + 4}\">{Escape(impls[i])}</text>\n");
        }

        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left + (impls.Length * 170)}\" y=\"{ly + 4}\" fill=\"#555\">solid: p50 · dashed: p99</text>\n");
        svg.Append("</svg>\n");
        return svg.ToString();
    }

    private static void Panel(StringBuilder svg, IReadOnlyList<Row> rows, string[] impls, int x0, string yLabel, (string Name, Func<Row, double> Value, string Dash)[] series)
    {
        double minX = Math.Log10(rows.Min(static r => r.ActiveRuns));
        double maxX = Math.Log10(rows.Max(static r => r.ActiveRuns));
        if (maxX - minX < 1e-9)
        {
            maxX = minX + 1;
        }

        double maxY = series.SelectMany(s => rows.Select(s.Value)).Where(static v => double.IsFinite(v)).DefaultIfEmpty(1).Max();
        maxY = NiceCeiling(maxY);
        double Sx(double runs) => x0 + ((Math.Log10(runs) - minX) / (maxX - minX) * PanelWidth);
        double Sy(double v) => Top + PanelHeight - (v / maxY * PanelHeight);

        // Frame, grid and ticks.
        svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{x0}\" y=\"{Top}\" width=\"{PanelWidth}\" height=\"{PanelHeight}\" fill=\"none\" stroke=\"#333\"/>\n");
        for (int i = 0; i <= 5; i++)
        {
            double v = maxY * i / 5;
            double y = Sy(v);
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{x0}\" y1=\"{y:F1}\" x2=\"{x0 + PanelWidth}\" y2=\"{y:F1}\" stroke=\"#ddd\"/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{x0 - 6}\" y=\"{y + 4:F1}\" text-anchor=\"end\">{v:N0}</text>\n");
        }

        foreach (int runs in rows.Select(static r => r.ActiveRuns).Distinct().Order())
        {
            double x = Sx(runs);
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{x:F1}\" y1=\"{Top}\" x2=\"{x:F1}\" y2=\"{Top + PanelHeight}\" stroke=\"#eee\"/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{x:F1}\" y=\"{Top + PanelHeight + 16}\" text-anchor=\"middle\">{FormatRuns(runs)}</text>\n");
        }

        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{x0 + (PanelWidth / 2)}\" y=\"{Top + PanelHeight + 36}\" text-anchor=\"middle\">active runs (log scale)</text>\n");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{x0 + (PanelWidth / 2)}\" y=\"{Top - 10}\" text-anchor=\"middle\" font-weight=\"bold\">{Escape(yLabel)}</text>\n");

        for (int i = 0; i < impls.Length; i++)
        {
            Row[] points = [.. rows.Where(r => r.Impl == impls[i]).OrderBy(static r => r.ActiveRuns)];
            string color = Colors[i % Colors.Length];
            foreach ((string _, Func<Row, double> value, string dash) in series)
            {
                string coordinates = string.Join(' ', points.Select(p => string.Create(CultureInfo.InvariantCulture, $"{Sx(p.ActiveRuns):F1},{Sy(value(p)):F1}")));
                string dashAttribute = dash.Length > 0 ? $" stroke-dasharray=\"{dash}\"" : string.Empty;
                svg.Append(CultureInfo.InvariantCulture, $"<polyline points=\"{coordinates}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dashAttribute}/>\n");
                foreach (Row p in points)
                {
                    svg.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{Sx(p.ActiveRuns):F1}\" cy=\"{Sy(value(p)):F1}\" r=\"3\" fill=\"{color}\"><title>{Escape(p.Impl)} {p.ActiveRuns:N0}: {value(p):F0}</title></circle>\n");
                }
            }
        }
    }

    private static double NiceCeiling(double value)
    {
        if (value <= 0)
        {
            return 1;
        }

        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(value)));
        foreach (double step in (double[])[1, 2, 2.5, 5, 10])
        {
            if (step * magnitude >= value)
            {
                return step * magnitude;
            }
        }

        return 10 * magnitude;
    }

    private static string FormatRuns(int runs) => runs >= 1_000_000 ? $"{runs / 1_000_000}M" : runs >= 1_000 ? $"{runs / 1_000}k" : runs.ToString(CultureInfo.InvariantCulture);

    private static string Escape(string text) => text.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal);

    /// <summary>One row of the scale CSV.</summary>
    /// <param name="Impl">The implementation.</param>
    /// <param name="ActiveRuns">The number of active runs.</param>
    /// <param name="BytesPerRun">Retained bytes per run.</param>
    /// <param name="StartP50Ns">Median start latency.</param>
    /// <param name="StartP99Ns">99th-percentile start latency.</param>
    internal sealed record Row(string Impl, int ActiveRuns, double BytesPerRun, double StartP50Ns, double StartP99Ns)
    {
        public static Row Parse(string line)
        {
            string[] f = line.Split(',');
            return new Row(
                f[0],
                int.Parse(f[1], CultureInfo.InvariantCulture),
                double.Parse(f[2], CultureInfo.InvariantCulture),
                double.Parse(f[4], CultureInfo.InvariantCulture),
                double.Parse(f[5], CultureInfo.InvariantCulture));
        }
    }
}
