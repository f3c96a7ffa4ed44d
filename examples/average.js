// Average temperature per city over a year of daily readings, one CSV row per hash.
//
//   gearbox run examples/average.js --load examples/data/weather.csv
//   gearbox run examples/average.js --load examples/data/weather.csv --local-cluster
//
// --load writes every row of the file as a hash weather:<row> with the header's field names
// (station, city, date, temperature_c, humidity_pct, wind_kmh). The sums are kept in tenths of a
// degree, as integers, so the result does not depend on the order the shards add them up.

GB('KeysReader')
  .filter((record) => record.type === 'hash')
  .aggregateby(
    (record) => record.value.city,
    [0, 0],
    (city, [tenths, days], record) => [tenths + Math.round(Number(record.value.temperature_c) * 10), days + 1],
    (city, [tenths, days], [moreTenths, moreDays]) => [tenths + moreTenths, days + moreDays],
  )
  .map(({ key, value: [tenths, days] }) => `${key} ${(tenths / 10 / days).toFixed(2)} °C over ${days} days`)
  .sort()
  .run('weather:*')
