// Generates weather.csv: daily readings of ten weather stations over 2023, from a seeded
// pseudo-random generator (mulberry32, seed 20230101), so the file is the same on every run.
// The numbers are synthetic but shaped like real ones: a seasonal temperature curve per city
// (northern hemisphere, coldest mid-January), day-to-day noise, humidity and wind.
//
//   node examples/data/generate-weather.mjs > examples/data/weather.csv
function mulberry32(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// city, mean annual temperature (°C), seasonal amplitude (°C), mean humidity (%)
const STATIONS = [
  ['Oslo', 6.3, 10.5, 74],
  ['Stockholm', 7.4, 10.0, 75],
  ['Berlin', 10.3, 9.4, 72],
  ['Paris', 12.5, 8.0, 73],
  ['London', 11.8, 7.0, 76],
  ['Madrid', 15.0, 10.2, 56],
  ['Rome', 15.8, 8.6, 68],
  ['Athens', 18.5, 9.3, 61],
  ['Lisbon', 17.4, 5.8, 70],
  ['Reykjavik', 5.0, 5.6, 78],
]

const random = mulberry32(20230101)
const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
const lines = ['station,city,date,temperature_c,humidity_pct,wind_kmh']
const start = Date.UTC(2023, 0, 1)
for (let day = 0; day < 365; day++) {
  const date = new Date(start + day * 86_400_000).toISOString().slice(0, 10)
  const season = -Math.cos((2 * Math.PI * (day - 15)) / 365)
  STATIONS.forEach(([city, mean, amplitude, humidity], i) => {
    const temperature = mean + amplitude * season + 2.5 * gauss()
    const h = Math.min(100, Math.max(15, humidity + 9 * gauss()))
    const wind = Math.max(0, 14 + 7 * gauss())
    lines.push(`ST${String(i + 1).padStart(2, '0')},${city},${date},${temperature.toFixed(1)},${Math.round(h)},${wind.toFixed(1)}`)
  })
}
process.stdout.write(lines.join('\n') + '\n')
